"""Does throughput scale with worker nodes? Requests/s with 1, 2 and 4 nodes of a simulated cluster.

A ``ray.cluster_utils.Cluster`` on 127.0.0.1 gets a head node with no CPUs (it hosts the
driver and the job-state actors: dedup, metrics) and then worker nodes of one CPU and one
``worker`` resource each; the job runs one generation worker per node
(``run.worker_resources: {worker: 1}``, SPREAD), each keeping ``--concurrency`` teacher
requests in flight, against the scripted OpenAI-compatible server on loopback that answers
every request after ``--latency`` seconds (1 s). The whole engine runs (prompt rendering,
parsing, sandboxed execution of every program, dedup, parquet commits). Nodes are added to the
same cluster between cases (1, then 2, then 4 nodes).

The rate is measured at the server: requests counted between the moments 10% and 90% of the
case's requests had arrived (start-up and the tail excluded); the whole-run rate is printed
too. Each case prints its rate over the one-node rate next to the target ``0.9 x N``.

All simulated nodes share this machine's cores, so this measures whether the orchestration
(driver, chunk dispatch, cluster-wide dedup, Ray's scheduling over nodes) gets in the way, not
hardware scale-out. On a 2-core machine keep the in-flight cap per node moderate (default 8:
4 nodes x 8 = 32 requests/s, each with 2 programs to run): with much more, the OpenAI client's
and the sandbox's CPU per request saturate the two cores before the teacher does, and the
figure measures the CPU instead of the orchestrator.

Run from the repository root: ``.venv/bin/python benchmarks/scale_out.py [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.pop("RAY_ADDRESS", None)

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from orchestrator.cli.app import build_config  # noqa: E402
from orchestrator.core.records import Record  # noqa: E402
from orchestrator.engine.driver import run_job  # noqa: E402
from tests.support.scripted_server import ScriptedServer  # noqa: E402
from tests.support.tinygsm_teacher import tinygsm_reply  # noqa: E402


def synthetic_seeds(n: int, tag: str) -> list[Record]:
    return [
        Record.seed(
            f"In case {tag}, Ola has {i + 3} boxes with {i % 7 + 2} pens each. How many pens?",
            None,
            "bench",
        )
        for i in range(n)
    ]


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Requests/s between the moments 10% and 90% of ``total`` requests had arrived."""
    lo = next(s for s in samples if s[1] >= 0.1 * total)
    hi = next(s for s in samples if s[1] >= 0.9 * total)
    return (hi[1] - lo[1]) / max(hi[0] - lo[0], 1e-9)


def measure(nodes: int, concurrency: int, latency: float, seconds: float) -> float:
    n_seeds = int(nodes * concurrency / latency * seconds)
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    with ScriptedServer(reply=tinygsm_reply, latency=latency, record_requests=False) as srv:

        def sample() -> None:
            while not done.is_set():
                samples.append((time.monotonic(), srv.request_count))
                time.sleep(0.1)

        cfg, _ = build_config("tinygsm", {
            "teacher": {"base_url": srv.base_url, "model": "bench"},
            "run": {"workers": nodes, "concurrency": concurrency,
                    "commit_every_seeds": max(8, concurrency // 2),
                    "worker_resources": {"worker": 1}},
            "tinygsm": {"method": "one-step", "problems_per_seed": 2},
            "decontamination": {"enabled": False},
        })  # fmt: skip
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with tempfile.TemporaryDirectory() as out:
            start = time.monotonic()
            summary = run_job(cfg, synthetic_seeds(n_seeds, f"{nodes}n"), out)
            elapsed = time.monotonic() - start
        done.set()
        sampler.join()
        samples.append((time.monotonic(), srv.request_count))
        total = srv.request_count
    rate = steady_rate(samples, total)
    print(
        f"nodes={nodes} concurrency/node={concurrency} latency={latency}s seeds={n_seeds} "
        f"requests={total} steady={rate:.1f} req/s whole-run={total / elapsed:.1f} req/s "
        f"ideal={nodes * concurrency / latency:.1f} req/s "
        f"chunks on {len(summary['chunks_by_node'])} node(s)",
        flush=True,
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=8, help="in flight per node")
    parser.add_argument("--seconds", type=float, default=15.0, help="ideal duration per case")
    parser.add_argument("--nodes", default="1,2,4")
    args = parser.parse_args()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    try:
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        base: float | None = None
        added = 0
        for nodes in (int(n) for n in args.nodes.split(",")):
            while added < nodes:
                cluster.add_node(num_cpus=1, resources={"worker": 1})
                added += 1
            cluster.wait_for_nodes()
            rate = measure(nodes, args.concurrency, args.latency, args.seconds)
            base = base or rate / nodes
            ratio = rate / base
            print(
                f"  -> {nodes} node(s): x{ratio:.2f} the one-node rate; target >= "
                f"x{0.9 * nodes:.1f}: {'ok' if ratio >= 0.9 * nodes else 'BELOW'}",
                flush=True,
            )
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
