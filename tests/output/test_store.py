"""The output store's commit, ledger and cleanup rules, on a local directory and on a real
S3-compatible server on loopback (moto, through s3fs): the same tests, both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.core.records import Record
from orchestrator.output.storage import StorageError
from orchestrator.output.store import LEDGER_KEY, Commit, FinalCommit, OutputStore
from tests.support import s3_server as s3

s3_server, s3_env, s3_bucket = s3.s3_server, s3.s3_env, s3.s3_bucket  # fixtures
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "out")
    return f"s3://{request.getfixturevalue('s3_bucket')}/runs/out"


def row(i: int, seed: str = "s1") -> Record:
    return Record(id=f"r{i}", seed_id=seed, question=f"Question number {i} has 3 apples?",
                  code="def simple_math_problem() -> int:\n    return 3", answer="3")  # fmt: skip


def all_files(store: OutputStore) -> list[str]:
    fs = store.storage.fs
    fs.invalidate_cache()
    return sorted(p.removeprefix(store.storage.base + "/") for p in fs.find(store.storage.base))


def test_candidate_then_final_commit_land_whole_with_their_ledgers(location: str) -> None:
    store = OutputStore(location)
    store.prepare()
    commit = Commit(
        seeds={"s1": "accepted", "s2": "rejected"},
        rows=[row(1), row(2)],
        rejected=[row(3, "s2")],
        side={"verifier": [Record(id="v1", seed_id="s1", question="q", meta={"label": True})]},
    )
    cid, rows = store.write_candidates(commit)
    assert cid == commit.id and [r["id"] for r in rows] == ["r1", "r2"]
    assert all_files(store) == [
        "README.md",
        f"_mathsynth/candidates/cand-{cid}.parquet",
        f"rejected/rejected-{cid}.parquet",
        f"verifier/verifier-{cid}.parquet",
    ]  # no temp file or temp object is left behind
    ledger = store.read_ledger()
    assert ledger.outcomes == {"s1": "accepted", "s2": "rejected"}
    assert ledger.finished == {"s1", "s2"} and ledger.finalized == set()
    assert ledger.candidates == {cid: commit.seeds} and ledger.row_ids == set()
    assert store.candidate_rows(cid) == rows
    (side,) = store.files("verifier")
    assert store.read_table(side).column("label").to_pylist() == [True]
    # the finalizer keeps r1, drops r2 as a duplicate of r1, and uses the candidate up
    dup = {**rows[1], "reject_reason": "dedup:duplicate", "reject_detail": "r1"}
    final = FinalCommit(seeds={"s1": "accepted", "s2": "rejected"}, rows=[rows[0]],
                        rejected=[dup], candidates=[cid])  # fmt: skip
    fid = store.write_final(final)
    (data,) = store.committed_files()
    assert store.storage.read_schema(data).metadata[LEDGER_KEY]
    assert store.read_table(data).column("id").to_pylist() == ["r1"]
    ledger = store.read_ledger()
    assert ledger.finalized == {"s1", "s2"} and ledger.consumed == {cid}
    assert ledger.candidates == {} and ledger.row_ids == {"r1"} and ledger.shards == 1
    assert ledger.questions == [(row(1).question, "r1")]
    assert store.commit_ids() == {cid, fid}
    # a crash before the used-up candidate is removed: the next cleanup removes it
    assert store.cleanup() == [store.storage.path(f"_mathsynth/candidates/cand-{cid}.parquet")]
    assert all_files(store) == [
        "README.md",
        f"data/train-{fid}.parquet",
        f"rejected/rejected-{cid}.parquet",
        f"rejected/rejected-{fid}.parquet",
        f"verifier/verifier-{cid}.parquet",
    ]


def test_zero_row_commits_are_manifests_and_failed_seeds_are_retried(location: str) -> None:
    store = OutputStore(location)
    store.prepare()
    first = Commit(seeds={"s1": "failed", "s2": "rejected"}, failures={"s1": "HTTP 400"},
                   rejected=[row(5, "s2")])  # fmt: skip
    cid, rows = store.write_candidates(first)
    assert rows == [] and store.committed_files() == []
    assert store.read_json(f"_mathsynth/candidates/cand-{cid}.json") == {
        "seeds": first.seeds,
        "failures": first.failures,
    }
    ledger = store.read_ledger()
    assert ledger.finished == {"s2"} and ledger.failures == {"s1": "HTTP 400"}
    assert store.cleanup() == []  # the rejected file belongs to the candidate commit
    fid = store.write_final(FinalCommit(seeds=first.seeds, failures=first.failures,
                                        candidates=[cid]))  # fmt: skip
    store.remove_candidates([cid])
    assert store.read_json(f"_mathsynth/commits/{fid}.json")["candidates"] == [cid]
    ledger = store.read_ledger()
    assert ledger.finalized == {"s2"} and ledger.final["s1"] == "failed"
    # the retried seed is accepted later: accepted wins and its failure is forgotten
    cid2, rows2 = store.write_candidates(Commit(seeds={"s1": "accepted"}, rows=[row(6)]))
    store.write_final(FinalCommit(seeds={"s1": "accepted"}, rows=rows2, candidates=[cid2]))
    reopened = OutputStore(location).read_ledger()
    assert reopened.finished == {"s1", "s2"} and reopened.failures == {}
    assert reopened.shards == 2 and reopened.row_ids == {"r6"}


def test_failed_commit_is_invisible_and_its_orphans_are_cleaned(location: str) -> None:
    store = OutputStore(location)
    store.prepare()
    kept, _ = store.write_candidates(Commit(seeds={"s1": "accepted"}, rows=[row(1)],
                                            rejected=[row(2)]))  # fmt: skip
    bad = Record(id="bad", seed_id="s9", question="Question with 9 items?", code=123)  # type: ignore[arg-type]
    broken = Commit(seeds={"s9": "accepted"}, rows=[bad], rejected=[row(3, "s9")],
                    side={"verifier": [row(4, "s9")]})  # fmt: skip
    with pytest.raises(pa.ArrowException):  # the candidate file cannot be built: no commit point
        store.write_candidates(broken)
    orphans = {f"rejected/rejected-{broken.id}.parquet", f"verifier/verifier-{broken.id}.parquet"}
    assert orphans <= set(all_files(store))  # written before the commit point ...
    ledger = OutputStore(location).read_ledger()
    assert ledger.outcomes == {"s1": "accepted"} and set(ledger.candidates) == {kept}
    removed = OutputStore(location).cleanup()
    assert {p.removeprefix(store.storage.base + "/") for p in removed} == orphans
    assert all_files(store) == [
        "README.md",
        f"_mathsynth/candidates/cand-{kept}.parquet",
        f"rejected/rejected-{kept}.parquet",
    ]


def test_small_files_are_written_whole_and_read_back(location: str) -> None:
    store = OutputStore(location)
    store.prepare()
    assert store.read_json("_mathsynth/batches/b1.json") is None
    assert not store.exists("_mathsynth/batches/b1.json")
    store.write_json("_mathsynth/batches/b1.json", {"state": "submitted", "n": 1})
    store.write_json("_mathsynth/batches/b1.json", {"state": "done", "n": 2})  # replaces
    assert store.read_json("_mathsynth/batches/b1.json") == {"state": "done", "n": 2}
    assert store.exists("_mathsynth/batches/b1.json")
    store.write_text("notes.txt", "héllo\n")
    assert store.read_text("notes.txt") == "héllo\n"
    assert all_files(store) == ["README.md", "_mathsynth/batches/b1.json", "notes.txt"]


WRITER = """
import sys
from orchestrator.core.records import Record
from orchestrator.output.store import Commit, OutputStore
store = OutputStore(sys.argv[1])
rows = [Record(id="x1", seed_id="s7", question="Question from another process, 7?")]
print(store.write_candidates(Commit(seeds={"s7": "accepted"}, rows=rows))[0])
"""


def test_commits_from_another_process_are_listed(location: str) -> None:
    """Workers commit from other processes (other nodes): listings are never served stale."""
    store = OutputStore(location)
    store.prepare()
    store.write_candidates(Commit(seeds={"s1": "accepted"}, rows=[row(1)]))
    assert store.read_ledger().finished == {"s1"}  # listing done (and cached by s3fs) once
    proc = subprocess.run([sys.executable, "-c", WRITER, location], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ledger = store.read_ledger()
    assert ledger.finished == {"s1", "s7"} and len(ledger.candidates) == 2
    assert proc.stdout.strip() in store.commit_ids()


def test_worker_env_is_forwarded_for_object_stores_only(location: str) -> None:
    env = OutputStore(location).worker_env()
    if location.startswith("s3://"):
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert all(k.startswith(("AWS_", "FSSPEC_", "GOOGLE_")) for k in env)
    else:
        assert env == {}


def test_local_paths_keep_their_layout(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out")
    store.prepare()
    assert store.root == tmp_path / "out"
    for folder in (
        "data",
        "rejected",
        "_mathsynth/tmp",
        "_mathsynth/commits",
        "_mathsynth/candidates",
    ):
        assert (store.root / folder).is_dir()
    leftover = store.tmp / "train-x.parquet.123.tmp"  # a write interrupted before its rename
    leftover.write_bytes(b"PAR1 half")
    cid, rows = store.write_candidates(Commit(seeds={"s1": "accepted"}, rows=[row(1)]))
    fid = store.write_final(FinalCommit(seeds={"s1": "accepted"}, rows=rows, candidates=[cid]))
    store.remove_candidates([cid])
    assert OutputStore(f"file://{tmp_path / 'out'}").commit_ids() == {cid, fid}  # same dir
    assert store.cleanup() == [str(leftover)] and not leftover.exists()
    assert pq.read_table(store.root / "data" / f"train-{fid}.parquet").num_rows == 1


def test_unsupported_locations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="unsupported storage"):
        OutputStore("memory://out")  # per-process memory: workers would write elsewhere
    with pytest.raises(StorageError):
        OutputStore("nosuchproto://bucket/out")
    with pytest.raises(StorageError, match="not a local directory"):
        _ = OutputStore("s3://bucket/out").root
