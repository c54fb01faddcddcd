"""Damaged files in an output directory: ``run``, ``stats`` and ``show`` name the file and exit
2 with a hint; ``mathsynth repair`` moves it (and its commit's other files) to quarantine, and
the next run runs exactly the seeds it recorded again (their replies come from the reply log). Real Ray (the session
fixture), real HTTP to the scripted teacher, real parquet on disk, the CLI in a subprocess.
Also: ``show`` prints teacher text as data, and refuses a directory no run wrote."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator.core.records import Record
from orchestrator.engine.driver import run_job
from orchestrator.output.integrity import QUARANTINE_DIR, scan
from orchestrator.output.store import Commit, OutputStore
from tests.support.cli import run_cli
from tests.support.configs import make_config
from tests.support.scripted_server import ScriptedServer
from tests.support.small_output import commit
from tests.support.tinygsm_teacher import tinygsm_reply


def flat(text: str) -> str:
    return " ".join(text.split())


def commit_seeds(store: OutputStore, data_file: str) -> set[str]:
    """The seeds a data file's footer records (read before damaging it)."""
    import json

    from orchestrator.output.store import LEDGER_KEY

    meta = pq.read_schema(data_file).metadata
    return set(json.loads(meta[LEDGER_KEY])["seeds"])


@pytest.mark.usefixtures("ray_local")
def test_a_truncated_shard_is_named_quarantined_and_its_seeds_rerun(
    tmp_path: Path, seeds: list[Record]
) -> None:
    out = tmp_path / "out"
    with ScriptedServer(reply=tinygsm_reply) as srv:
        cfg = make_config(srv.base_url)
        run_job(cfg, seeds, out)
        store = OutputStore(out)
        victim = store.committed_files()[0]
        lost = commit_seeds(store, victim)
        data = Path(victim).read_bytes()
        Path(victim).write_bytes(data[: len(data) // 2])  # truncated: footer and ledger gone
        bogus = out / "_mathsynth" / "commits" / "0123456789abcdef.json"
        bogus.write_text('{"seeds": {"x": "accepted"')  # a commit record cut short

        for command in (["stats", str(out)], ["show", str(out)]):
            code, text = run_cli(*command, timeout=120)
            assert code == 2, text
            assert f"{victim}: unreadable" in flat(text) and f"mathsynth repair {out}" in flat(text)
            assert "Traceback" not in text
        code, text = run_cli("run", "tinygsm", "--seeds", "demo.jsonl", "--out", str(out),
                             "--base-url", srv.base_url, "--model", "scripted", "--no-progress",
                             "--no-decontaminate", "--allow-config-change", timeout=120)  # fmt: skip
        assert code == 2 and "unreadable" in text and "mathsynth repair" in flat(text), text

        code, text = run_cli("repair", str(out), "--dry-run", timeout=120)
        assert code == 0 and "nothing moved" in text and Path(victim).exists(), text
        code, text = run_cli("repair", str(out), timeout=120)
        assert code == 0, text
        assert not Path(victim).exists() and not bogus.exists()
        quarantined = out / QUARANTINE_DIR
        assert (quarantined / "data" / Path(victim).name).read_bytes() == data[: len(data) // 2]
        assert (quarantined / "_mathsynth" / "commits" / bogus.name).exists()
        cid = Path(victim).stem.removeprefix("train-")
        assert not list((out / "rejected").glob(f"*{cid}*"))  # its companion moved with it
        assert scan(OutputStore(out)) == []
        code, text = run_cli("stats", str(out), timeout=120)
        assert code == 0, text

        # the next run runs exactly the seeds the quarantined shard recorded, from the log
        before = len(srv.requests)
        summary = run_job(cfg, seeds, out, allow_config_change=True)  # (the CLI's config above)
        assert len(srv.requests) == before  # their replies were logged: nothing paid twice
    assert summary["seeds_skipped_already_finished"] == len(seeds) - len(lost)
    assert summary["cache_hits"] == len(lost)  # one-step: one reply per seed
    ledger = OutputStore(out).read_ledger()
    assert ledger.finished == {s.id for s in seeds}
    ids = [
        i for f in OutputStore(out).committed_files() for i in pq.read_table(f)["id"].to_pylist()
    ]
    assert len(ids) == len(set(ids)) == summary["rows_total"]


def test_show_prints_teacher_text_as_data(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = OutputStore(out)
    store.prepare()
    seed = Record.seed("What is 2 + 3?", "5", "t")
    row = Record(
        id="r1", question="Compute [/] and [bold red]x[/bold red] for x = [1, 2]?",
        seed_id=seed.id, method="tinygsm", code="def f():\n    return [1][0]  # [/]", answer="1",
    )  # fmt: skip
    commit(store, Commit(seeds={seed.id: "accepted"}, rows=[row]))
    code, text = run_cli("show", str(out), "--rows", "1", timeout=120)
    assert code == 0, text
    assert "Compute [/] and [bold red]x[/bold red] for x = [1, 2]?" in text
    assert "return [1][0]  # [/]" in text


def test_show_and_stats_refuse_a_directory_no_run_wrote(tmp_path: Path) -> None:
    for command in ("show", "stats", "repair"):
        code, text = run_cli(command, str(tmp_path / "missing"), timeout=120)
        assert code == 2, (command, text)
        assert "not a mathsynth output directory" in text
