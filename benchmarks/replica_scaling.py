"""Does throughput scale with teacher replicas? 1 vs N replicas of a latency-bound server.

Each replica is a real ``TeacherReplica`` Ray actor running the scripted OpenAI-compatible
server as its subprocess on 127.0.0.1, made latency-bound like a model server at its batch cap:
every request takes ``--latency`` seconds and at most ``--per-replica`` are served at once (the
rest queue), so one replica does at most per_replica / latency requests/s. A ``RoutedTeacher``
(the workers' router: least in-flight first, health-polled endpoint list) keeps ``--in-flight``
requests outstanding for ``--seconds`` per configuration; requests/s are measured after a
warm-up of one latency. Prints requests/s for 1 and N replicas, the ratio (target >= 3.6 for
N = 4) and its ideal (N). One run, ratios only: no assert, these machines are noisy.

    .venv/bin/python benchmarks/replica_scaling.py [--replicas 4] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402

from orchestrator.teacher.pool import ReplicaPool  # noqa: E402
from orchestrator.teacher.routing import RoutedTeacher  # noqa: E402
from orchestrator.teacher.settings import TeacherSettings  # noqa: E402


def settings(replicas: int, latency: float, per_replica: int) -> TeacherSettings:
    launcher = ["{python}", "-m", "tests.support.scripted_server", "--port", "{port}",
                "--latency", str(latency), "--max-concurrency", str(per_replica), "--no-record"]  # fmt: skip
    return TeacherSettings.model_validate({
        "kind": "vllm", "model": "scripted", "replicas": replicas, "read_timeout_s": 60,
        "replica": {"launcher": launcher, "num_gpus": 0, "num_cpus": 0,
                    "env": {"PYTHONPATH": str(ROOT)}, "startup_timeout_s": 60},
    })  # fmt: skip


async def drive(teacher: RoutedTeacher, in_flight: int, seconds: float, warm: float) -> float:
    """Requests/s completed between ``warm`` and ``warm + seconds`` after the start."""
    start = time.monotonic()
    window = (start + warm, start + warm + seconds)
    done = 0

    async def sender(k: int) -> None:
        nonlocal done
        i = 0
        while time.monotonic() < window[1]:
            await teacher.chat([{"role": "user", "content": f"q {k} {i}"}], max_tokens=16)
            i += 1
            if window[0] <= time.monotonic() <= window[1]:
                done += 1

    await asyncio.gather(*(sender(k) for k in range(in_flight)))
    await teacher.close()
    return done / seconds


def measure(replicas: int, args: argparse.Namespace) -> float:
    with ReplicaPool(settings(replicas, args.latency, args.per_replica)) as pool:
        pool.wait_ready(replicas, timeout_s=120)
        teacher = RoutedTeacher(pool.settings, pool.supervisor)
        return asyncio.run(drive(teacher, args.in_flight, args.seconds, warm=2 * args.latency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument("--per-replica", type=int, default=4, help="requests served at once")
    parser.add_argument("--in-flight", type=int, default=48, help="requests kept outstanding")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per setup")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="WARNING", log_to_driver=False)  # fmt: skip
    try:
        one = measure(1, args)
        many = measure(args.replicas, args)
    finally:
        ray.shutdown()
    cap = args.per_replica / args.latency
    print(f"server cap: {cap:.1f} requests/s per replica ({args.per_replica} at once x "
          f"{args.latency:g} s); {args.in_flight} requests in flight through RoutedTeacher")  # fmt: skip
    print(f"1 replica:  {one:7.1f} requests/s  ({one / cap:.2f} of its cap)")
    print(f"{args.replicas} replicas: {many:7.1f} requests/s  ({many / cap / args.replicas:.2f} of cap)")  # fmt: skip
    print(f"throughput ratio {args.replicas} vs 1 replica: {many / one:.2f} "
          f"(ideal {args.replicas}, target >= {0.9 * args.replicas:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
