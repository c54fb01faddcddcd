"""BatchTeacherClient against the scripted server's Batch API (files + batches), over real HTTP
on 127.0.0.1: collection into batches, routing results by custom_id, per-line errors
(non-retried 4xx, resubmitted 5xx / expired lines, malformed results), transient errors on the
Batch API calls themselves, fatal 401 lines, and resuming a recorded batch from a new client;
plus the ledger's index and the result-line classification on their own."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orchestrator.teacher import Completion, TeacherError, TeacherFatalError, TeacherSettings
from orchestrator.teacher.batch_client import BatchTeacherClient
from orchestrator.teacher.batch_ledger import BatchLedger, BatchRecord
from orchestrator.teacher.batch_lines import LineOutcome, classify
from tests.support.scripted_server import Fault, ScriptedServer

T = TypeVar("T")


@pytest.fixture
def srv() -> Iterator[ScriptedServer]:
    with ScriptedServer(batch_delay=0.1) as server:
        yield server


def settings(srv: ScriptedServer, **batch: Any) -> TeacherSettings:
    return TeacherSettings(
        kind="openai-batch", base_url=srv.base_url, model="teacher-m", max_attempts=3,
        backoff_initial_s=0.01, backoff_max_s=0.05, read_timeout_s=5,
        batch={"collect_s": 0.2, "poll_s": 0.05, **batch},
    )  # fmt: skip


def ask(client: BatchTeacherClient, texts: list[str]) -> Coroutine[Any, Any, list[Any]]:
    calls = [client.chat([{"role": "user", "content": t}], max_tokens=50) for t in texts]
    return asyncio.gather(*calls, return_exceptions=True)


def run(client: BatchTeacherClient, texts: list[str]) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await ask(client, texts)
        finally:
            await client.close()

    return asyncio.run(go())


TEXTS = [f"question number {i}" for i in range(7)]


def test_calls_are_collected_into_one_batch_and_routed_by_custom_id(
    srv: ScriptedServer, tmp_path: Path
) -> None:
    client = BatchTeacherClient(settings(srv), ledger=BatchLedger(tmp_path))
    results = run(client, TEXTS)
    assert [r.text for r in results] == [f"echo: {t}" for t in TEXTS]
    assert all(isinstance(r, Completion) and r.prompt_tokens == 3 for r in results)
    counts = srv.batches.counts()
    assert counts["batches_created"] == counts["files_uploaded"] == 1
    assert counts["lines_submitted"] == srv.request_count == len(TEXTS)
    assert len(set(srv.batches.batch_inputs[0])) == len(TEXTS)
    assert client.stats["completions"] == len(TEXTS) and client.stats["batches_submitted"] == 1
    # the batch is recorded (final status, result files) where a rerun will look
    (record,) = BatchLedger(tmp_path).load()
    assert record.status == "completed" and record.output_file_id
    assert sorted(record.custom_ids) == sorted(srv.batches.batch_inputs[0])


def test_max_requests_splits_batches_and_identical_requests_stay_distinct(
    srv: ScriptedServer,
) -> None:
    texts = TEXTS[:4] + TEXTS[:1]  # the same request twice: two lines, two custom_ids
    results = run(BatchTeacherClient(settings(srv, max_requests=2)), texts)
    assert [r.text for r in results] == [f"echo: {t}" for t in texts]
    inputs = srv.batches.batch_inputs
    assert sorted(len(ids) for ids in inputs) == [1, 2, 2]
    assert len({cid for ids in inputs for cid in ids}) == len(texts)


def test_per_line_errors(srv: ScriptedServer) -> None:
    # line 1: 400 (that call fails, not retried); line 2: 500 and line 3: not done before the
    # window ends (batch expired): both resubmitted in a second batch, and then answered
    srv.inject([Fault(status=400), Fault(status=500), Fault(kind="timeout")])
    client = BatchTeacherClient(settings(srv))
    results = run(client, TEXTS[:5])
    failed = srv.requests[0]["messages"][-1]["content"]  # the first line the server answered
    error = results[TEXTS.index(failed)]
    assert isinstance(error, TeacherError) and error.kind == "bad_request" and error.status == 400
    assert [r.text for r in results if isinstance(r, Completion)] == [
        f"echo: {t}" for t in TEXTS[:5] if t != failed
    ]
    first, second = srv.batches.batch_inputs
    assert len(first) == 5 and len(second) == 2 and set(second) < set(first)
    assert sorted(srv.batches.statuses().values()) == ["completed", "expired"]
    assert client.stats["resubmitted"] == 2 and client.stats["failures"] == 1


def test_transient_line_errors_give_up_after_max_attempts(srv: ScriptedServer) -> None:
    srv.inject([Fault(status=503)] * 3)  # the same single request, three batches in a row
    (result,) = run(BatchTeacherClient(settings(srv)), TEXTS[:1])
    assert isinstance(result, TeacherError) and result.kind == "retries_exhausted"
    assert result.status == 503 and result.attempts == 3
    assert srv.batches.counts()["batches_created"] == 3


def test_malformed_result_is_resubmitted(srv: ScriptedServer) -> None:
    srv.inject([Fault(kind="malformed", body='{"object": "chat.completion"}')])
    (result,) = run(BatchTeacherClient(settings(srv)), TEXTS[:1])
    assert isinstance(result, Completion) and result.text == f"echo: {TEXTS[0]}"
    assert result.attempts == 2 and srv.batches.counts()["batches_created"] == 2


def test_unauthorized_line_is_fatal(srv: ScriptedServer) -> None:
    srv.inject([Fault(status=401)])
    (result,) = run(BatchTeacherClient(settings(srv)), TEXTS[:1])
    assert isinstance(result, TeacherFatalError) and "OPENAI_API_KEY" in str(result)


def test_transient_errors_on_batch_api_calls_are_retried() -> None:
    with ScriptedServer(batch_delay=0.5) as srv:
        client = BatchTeacherClient(settings(srv))

        async def go() -> list[Any]:
            calls = asyncio.ensure_future(ask(client, TEXTS[:3]))
            srv.batches.inject([Fault(status=503), Fault(status=429, retry_after=0.05)])  # upload
            while not srv.batches.counts().get("batches_created"):
                await asyncio.sleep(0.01)
            srv.batches.inject([Fault(status=500), Fault(status=502)])  # polling
            try:
                return await calls
            finally:
                await client.close()

        results = asyncio.run(go())
        assert [r.text for r in results] == [f"echo: {t}" for t in TEXTS[:3]]
        counts = srv.batches.counts()
    assert counts["batches_created"] == counts["files_uploaded"] == 1
    for status in (503, 429, 500, 502):
        assert counts[f"api_status_{status}"] == 1 == client.stats[f"api_status_{status}"]
    assert client.stats["retries"] == 4


def test_batch_api_client_error_fails_the_calls(srv: ScriptedServer) -> None:
    srv.batches.inject([Fault(status=400)])  # the upload is rejected
    results = run(BatchTeacherClient(settings(srv)), TEXTS[:2])
    assert all(isinstance(r, TeacherError) and r.kind == "bad_request" for r in results)
    assert srv.batches.counts().get("batches_created", 0) == 0


def test_a_new_client_waits_on_the_recorded_batch_instead_of_resubmitting(
    tmp_path: Path,
) -> None:
    with ScriptedServer(batch_delay=1.5) as srv:

        async def interrupted() -> None:
            client = BatchTeacherClient(settings(srv), ledger=BatchLedger(tmp_path))
            calls = asyncio.ensure_future(ask(client, TEXTS[:4]))
            while not BatchLedger(tmp_path).load():  # submitted and recorded
                await asyncio.sleep(0.05)
            calls.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await calls
            await client.close()  # the "process" ends while the batch is in progress

        asyncio.run(interrupted())
        assert list(srv.batches.statuses().values()) == ["in_progress"]
        (record,) = BatchLedger(tmp_path).load()
        assert record.status in ("validating", "in_progress") and len(record.custom_ids) == 4
        # a rerun asks the same 4 requests plus 2 new ones
        rerun = BatchTeacherClient(settings(srv), ledger=BatchLedger(tmp_path))
        results = run(rerun, TEXTS[:6])
        assert [r.text for r in results] == [f"echo: {t}" for t in TEXTS[:6]]
        old, new = srv.batches.batch_inputs
        assert set(old) == set(record.custom_ids) and len(new) == 2 and not set(new) & set(old)
        assert srv.batches.counts()["batches_created"] == 2
        assert rerun.stats["batches_resumed"] == 1 and rerun.stats["batches_submitted"] == 1
        # a third client finds every result in finished batches: nothing is submitted or run
        lines = srv.request_count
        again = run(BatchTeacherClient(settings(srv), ledger=BatchLedger(tmp_path)), TEXTS[:6])
        assert [r.text for r in again] == [r.text for r in results]
        assert srv.batches.counts()["batches_created"] == 2 and srv.request_count == lines


def test_a_lost_recorded_batch_is_resubmitted(srv: ScriptedServer, tmp_path: Path) -> None:
    run(BatchTeacherClient(settings(srv), ledger=BatchLedger(tmp_path)), TEXTS[:2])
    old = next((tmp_path / "_mathsynth" / "batches").glob("*.json"))
    path = old.with_name("batch_unknown.json")  # a batch the provider no longer knows
    path.write_text(json.dumps({**json.loads(old.read_text()), "batch_id": "batch_unknown"}))
    old.unlink()
    results = run(BatchTeacherClient(settings(srv), ledger=BatchLedger(tmp_path)), TEXTS[:2])
    assert [r.text for r in results] == [f"echo: {t}" for t in TEXTS[:2]]
    assert srv.batches.counts()["batches_created"] == 2
    assert json.loads(path.read_text())["status"] == "failed"  # skipped by the next run


def test_ledger_index_skips_other_endpoints_and_failed_batches(tmp_path: Path) -> None:
    ledger = BatchLedger(tmp_path)
    for i, (url, status, ids) in enumerate([
        ("http://a/v1", "completed", ["x", "y"]),
        ("http://a/v1", "in_progress", ["y"]),  # newer: y was resubmitted here
        ("http://a/v1", "failed", ["z"]),
        ("http://b/v1", "completed", ["w"]),
    ]):  # fmt: skip
        ledger.save(BatchRecord(batch_id=f"batch_{i}", input_file_id=f"file-{i}", base_url=url,
                                custom_ids=ids, status=status, created_at=float(i)))  # fmt: skip
    (tmp_path / "_mathsynth" / "batches" / "batch_9.json").write_text("{not json")
    owner, records = ledger.index("http://a/v1")
    assert owner == {"x": "batch_0", "y": "batch_1"} and set(records) == {"batch_0", "batch_1"}


def test_classify_result_lines() -> None:
    def line(status: int | None, body: Any = None) -> dict[str, Any]:
        response = None if status is None else {"status_code": status, "body": body}
        return {"custom_id": "c", "response": response, "error": None}

    ok = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "hi"}}]}  # fmt: skip
    assert classify(line(200, ok), "completed").action == "ok"
    assert classify(line(200, "{broken"), "completed").action == "malformed"
    assert classify(line(429), "completed") == LineOutcome("retry", 429, "HTTP 429")
    assert classify(line(503), "completed").action == "retry"
    assert classify(line(422), "completed") == LineOutcome("fail", 422, "HTTP 422")
    assert classify(line(None), "expired").action == "retry"  # error.code: batch_expired
    assert classify(None, "cancelled").action == "retry"
    failed = classify(None, "failed")
    assert failed.action == "fail" and failed.status is None
