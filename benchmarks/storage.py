"""Output-store cost per backend: a worker's candidate commit (``write_candidates``: rejected
file + candidate file) followed by the finalizer's final commit (``write_final``: data shard,
the commit point) and the removal of the used-up candidate, and ``read_ledger`` (the resume
scan: list, read every footer and the id/question columns) on a local directory and on an S3-compatible server on loopback (moto, through s3fs).
Prints ms per commit, ms per resume scan and the S3/local ratios from one run; asserts nothing.
Loopback moto has no network latency and a slower server than real S3: the ratio shows the
client-side cost of the object-store path (serialising to memory, one PUT, listings), not what
a real bucket would take.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.core.records import Record  # noqa: E402
from orchestrator.output.store import Commit, FinalCommit, OutputStore  # noqa: E402


def commits(n: int, rows: int) -> list[Commit]:
    out = []
    for c in range(n):
        recs = [Record(id=f"r{c}-{i}", seed_id=f"s{c}", question=f"Question {c} {i}: 3 + {i}?",
                       code=f"def simple_math_problem() -> int:\n    return {3 + i}",
                       answer=str(3 + i)) for i in range(rows)]  # fmt: skip
        rejected = [Record(id=f"x{c}", seed_id=f"s{c}", question="dropped 1?")]
        out.append(Commit(seeds={f"s{c}": "accepted"}, rows=recs, rejected=rejected))
    return out


def measure(location: str, batch: list[Commit]) -> tuple[float, float]:
    store = OutputStore(location)
    store.prepare()
    start = time.perf_counter()
    for commit in batch:
        cid, rows = store.write_candidates(commit)
        store.write_final(FinalCommit(seeds=commit.seeds, rows=rows, candidates=[cid]))
        store.remove_candidates([cid])
    write_ms = (time.perf_counter() - start) * 1000 / len(batch)
    start = time.perf_counter()
    ledger = OutputStore(location).read_ledger()
    scan_ms = (time.perf_counter() - start) * 1000
    assert len(ledger.finished) == len(batch)
    return write_ms, scan_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--rows", type=int, default=50, help="rows per commit")
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    import fsspec

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    fsspec.filesystem("s3").mkdir(bucket)
    batch = commits(args.commits, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        local = measure(str(Path(tmp) / "out"), batch)
    s3 = measure(f"s3://{bucket}/out", batch)
    server.stop()
    print(f"{args.commits} commits x {args.rows} rows")
    print(f"local: {local[0]:.1f} ms/commit, resume scan {local[1]:.0f} ms")
    print(f"s3 (moto, loopback): {s3[0]:.1f} ms/commit, resume scan {s3[1]:.0f} ms")
    print(f"ratio s3/local: commit {s3[0] / local[0]:.1f}x, resume scan {s3[1] / local[1]:.1f}x")


if __name__ == "__main__":
    main()
