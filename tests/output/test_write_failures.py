"""An output directory that cannot take files: a disk that fills up mid-run, a read-only
filesystem. Real small tmpfs mounts (we run as root; skipped where mounting is not allowed),
the CLI in a subprocess with its own Ray, the scripted teacher over real HTTP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator.output.storage import Storage, StorageError
from orchestrator.output.store import OutputStore
from tests.cli.test_fail_fast import flat, pipeline
from tests.support.cli import run_cli
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply


def mounted(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mounted(tmp_path / "disk", "size=160k")


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    yield from mounted(tmp_path / "ro", "ro,size=1m")


def test_a_disk_that_fills_up_mid_run(tmp_path: Path, small_disk: Path, gsm8k_train: Path) -> None:
    out = small_disk / "out"
    with ScriptedServer(reply=tinygsm_reply, model="s") as srv:
        code, text = run_cli("run", pipeline(tmp_path), "--seeds", str(gsm8k_train), "--limit",
                             "60", "--out", str(out), "--base-url", srv.base_url, "--model", "s",
                             "--no-progress", timeout=300)  # fmt: skip
    assert code == 2, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in text, text
    assert f"cannot write {out}/" in errors[0] and "No space left on device" in errors[0]
    # nothing half-written: no temp file, and every file that is there reads back whole
    assert not [p for p in out.rglob("*") if p.suffix == ".tmp"]
    store = OutputStore(out)
    for split in ("data", "rejected"):
        for file in store.files(split):
            pq.read_table(file)
    ledger = store.read_ledger()
    assert len(ledger.finished) < 60
    for file in (out / "_mathsynth" / "commits").glob("*.json"):
        json.loads(file.read_text())
    print(f"disk full: {len(ledger.finished)} seeds committed before: {errors[0]}")


def test_a_read_only_out_is_refused_before_anything_starts(tmp_path: Path, read_only: Path) -> None:
    out = read_only / "out"
    with ScriptedServer(reply=tinygsm_reply, model="s") as srv:
        code, text = run_cli("run", "tinygsm", "--seeds", "demo.jsonl", "--out", str(out),
                             "--base-url", srv.base_url, "--model", "s", "--no-progress")  # fmt: skip
        assert srv.request_count == 0
    assert code == 2, text
    assert f"error: {out}: cannot write here: Read-only file system" in flat(text)
    assert "Traceback" not in text


def test_a_failed_write_leaves_no_temp_file_and_names_the_file(small_disk: Path) -> None:
    storage = Storage(small_disk / "out")
    with pytest.raises(StorageError, match=r"cannot write .*/big\.bin: No space left on device"):
        storage.put_bytes("big.bin", b"x" * 400_000)
    assert not (small_disk / "out" / "big.bin").exists()
    assert not list((small_disk / "out").rglob("*.tmp"))
