"""What does batch mode cost the client, and how fast does a rerun find its recorded batches?

``client``: N chat calls (``--requests``) against the scripted server running as a separate
process on 127.0.0.1 (zero latency, echo replies), once through ``TeacherClient`` with
``--concurrency`` in flight (one HTTP request each), once through ``BatchTeacherClient``
(``max_requests`` per batch, no batch delay). Prints, for each, requests/s, the client's CPU
milliseconds per request and HTTP calls per request, and the batch/direct ratios. The server's
own time is not in the client CPU figure; batch wall time includes its processing of the lines.

``ledger``: writes ``--records`` batch records of ``--ids`` custom_ids each into a temporary
output dir and times ``BatchLedger.index`` (what every worker does on its first call of a
rerun): seconds per million recorded requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.teacher.batch_client import BatchTeacherClient  # noqa: E402
from orchestrator.teacher.batch_ledger import BatchLedger, BatchRecord  # noqa: E402
from orchestrator.teacher.client import TeacherClient  # noqa: E402
from orchestrator.teacher.settings import TeacherSettings  # noqa: E402


async def _drive(client: TeacherClient, n: int, concurrency: int) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            await client.chat([{"role": "user", "content": f"item {i}"}], max_tokens=16)

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()


def measure(client: TeacherClient, n: int, concurrency: int) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(_drive(client, n, concurrency))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    s = client.stats
    batch_calls = ("files_uploaded", "batches_submitted", "batch_polls", "downloads")
    http = sum(s[k] for k in batch_calls) if "downloads" in s else s["requests"]
    return {"rps": n / wall, "cpu_ms": 1000 * cpu / n, "http_per_req": http / n}


def bench_client(args: argparse.Namespace) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_server", "--port", "0", "--no-record"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[1]
        base = {"base_url": url, "model": "bench"}
        direct = measure(TeacherClient(TeacherSettings(**base)), args.requests, args.concurrency)
        batch_cfg = {"max_requests": args.max_requests, "collect_s": 0.2, "poll_s": 0.05}
        settings = TeacherSettings(**base, kind="openai-batch", batch=batch_cfg)
        batched = measure(BatchTeacherClient(settings), args.requests, args.requests)
    finally:
        server.terminate()
        server.wait(timeout=10)
    for name, row in (("direct", direct), ("batch", batched)):
        print(f"{name:7s} {row['rps']:9.0f} req/s  {row['cpu_ms']:6.3f} client CPU ms/req  "
              f"{row['http_per_req']:.4f} HTTP calls/req")  # fmt: skip
    print(f"batch/direct: CPU per request x{batched['cpu_ms'] / direct['cpu_ms']:.3f}, "
          f"throughput x{batched['rps'] / direct['rps']:.2f}")  # fmt: skip


def bench_ledger(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as out:
        ledger = BatchLedger(out)
        for r in range(args.records):
            ids = [f"ms-{r:06d}-{i:06d}" for i in range(args.ids)]
            ledger.save(BatchRecord(batch_id=f"batch_{r:06d}", input_file_id=f"file-{r}",
                                    base_url="http://x/v1", custom_ids=ids,
                                    status="completed", created_at=float(r)))  # fmt: skip
        t = time.perf_counter()
        owner, _ = ledger.index("http://x/v1")
        took = time.perf_counter() - t
    total = args.records * args.ids
    assert len(owner) == total
    print(f"ledger: {args.records} records, {total} requests indexed in {took:.2f} s "
          f"({took * 1e6 / total:.2f} s per million)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["client", "ledger", "all"], nargs="?", default="all")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-requests", type=int, default=1000)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--ids", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    if args.what in ("client", "all"):
        bench_client(args)
    if args.what in ("ledger", "all"):
        bench_ledger(args)


if __name__ == "__main__":
    main()
