"""``mathsynth push``: the exact upload plan, one commit through ``huggingface_hub`` to a local
stand-in of the Hub HTTP API, nothing of ``_mathsynth/`` or any local path, stale files removed,
object-store outputs too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import fsspec
import pytest
from huggingface_hub import DatasetCard
from huggingface_hub.errors import HfHubHTTPError

from orchestrator.output.card import write_card
from orchestrator.output.push import PushError, push, upload_plan
from orchestrator.output.store import OutputStore
from tests.support import s3_server as s3
from tests.support.hub_server import HubStandIn
from tests.support.small_output import KEPT, make_output

s3_server, s3_env, s3_bucket = s3.s3_server, s3.s3_env, s3.s3_bucket  # fixtures
ROOT = Path(__file__).resolve().parents[2]
PLOTS = {f"plots/{n}.png" for n in ("funnel", "question_length", "solution_length", "answers",
                                    "rejections")}  # fmt: skip


def expected_paths(store: OutputStore) -> set[str]:
    base = store.storage.base + "/"
    splits = [
        p.removeprefix(base) for s in ("data", "rejected", "verifier") for p in store.files(s)
    ]
    return {"README.md", "summary.json", *splits, *PLOTS}


def test_push_uploads_the_plan_in_one_commit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = make_output(str(out), verifier=True)
    store.write_json("summary.json", {"seeds_read": 4, "fatal": None})
    with HubStandIn() as hub:
        result = push(str(out), "me/math", token=hub.token, endpoint=hub.endpoint)
        files = hub.files("me/math")
        assert len(hub.commits) == 1 and result.deleted == [] and result.left_out == {}
        assert set(result.uploaded) == expected_paths(store)
        assert set(files) == expected_paths(store) | {".gitattributes"}
        assert not any(p.startswith("_mathsynth") for p in files)
        for path in result.uploaded:  # the bytes on disk, card and plots as rewritten by push
            assert files[path] == (out / path).read_bytes(), path
        assert ("POST", "/api/repos/create") in hub.requests
        clone = hub.checkout("me/math", tmp_path / "clone")
    card = DatasetCard.load(clone / "README.md")
    assert {c["config_name"] for c in card.data.configs} == {"default", "rejected", "verifier"}
    assert str(tmp_path) not in card.content
    train = datasets.load_dataset(str(clone), split="train")
    assert sorted(train["question"]) == sorted(q for q, _, _ in KEPT)
    assert set(train["source"]) == {"seeds.jsonl"}
    assert datasets.load_dataset(str(clone), "verifier", split="train").num_rows == 3


def test_push_mirrors_the_output_and_needs_the_token(tmp_path: Path) -> None:
    first = make_output(str(tmp_path / "a"))
    second = make_output(str(tmp_path / "b"), tag="-b")  # other rows, other commit files
    with HubStandIn() as hub:
        with pytest.raises(HfHubHTTPError):
            push(str(tmp_path / "a"), "me/math", token="wrong", endpoint=hub.endpoint)
        assert hub.repos == {}
        push(str(tmp_path / "a"), "me/math", token=hub.token, endpoint=hub.endpoint)
        result = push(str(tmp_path / "b"), "me/math", token=hub.token, endpoint=hub.endpoint)
        files = set(hub.files("me/math"))
    old = {p.removeprefix(first.storage.base + "/") for p in first.files("data")}
    new = {p.removeprefix(second.storage.base + "/") for p in second.files("data")}
    assert old.isdisjoint(new) and set(result.deleted) >= old
    assert files & old == set() and new <= files  # no stale shard would mix into the dataset


def test_plan_leaves_out_leaky_summary_and_refuses_local_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_output(str(tmp_path / "out"))
    write_card(store)
    store.write_json("summary.json", {"fatal": f"cannot write {tmp_path}/out/x.parquet"})
    plan = upload_plan(store)
    assert "summary.json" in plan.left_out and "summary.json" not in plan.paths
    assert set(plan.paths) == expected_paths(store) - {"summary.json"}
    monkeypatch.setenv("MY_TEACHER_API_KEY", "s3cr3t-value-123")
    store.write_json("summary.json", {"fatal": "HTTP 401: key s3cr3t-value-123 refused"})
    assert "secret" in upload_plan(store).left_out["summary.json"]
    # rows written before sources were portable name a local path: refused, naming the file
    old = make_output(str(tmp_path / "old"), source="/home/me/seeds/gsm8k.jsonl")
    write_card(old)
    with pytest.raises(PushError, match=r"old/data/train-.*parquet: the `source` column"):
        upload_plan(old)


def test_push_from_an_object_store(tmp_path: Path, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/runs/out"
    store = make_output(url)
    with HubStandIn() as hub:
        result = push(url, "me/math", token=hub.token, endpoint=hub.endpoint)
        files = hub.files("me/math")
    fs = fsspec.filesystem("s3")
    assert set(result.uploaded) == expected_paths(store) - {"summary.json"}
    for path in result.uploaded:
        assert files[path] == fs.cat_file(f"{s3_bucket}/runs/out/{path}"), path


def test_push_command(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_output(str(out))
    with HubStandIn() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": hub.token}
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", "push", str(out), "me/math", "--license", "mit"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "pushed" in proc.stdout and f"{hub.endpoint}/datasets/me/math/commit/" in proc.stdout
        card = hub.files("me/math")["README.md"].decode()
        bad = subprocess.run(
            [sys.executable, "-m", "orchestrator", "push", str(tmp_path / "none"), "me/math"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert "license: mit" in card
    assert bad.returncode == 2 and "none: not a mathsynth output" in bad.stderr.replace("\n", "")
    assert len(hub.commits) == 1
