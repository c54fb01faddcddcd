"""Does the engine keep a slow teacher saturated?

A scripted OpenAI-compatible server on 127.0.0.1 answers every request after ``--latency``
seconds. With W workers x C requests in flight, the ideal rate is W*C/latency requests/s; the
ratio achieved/ideal is printed for each (W, C). The whole engine runs: Ray actors, prompt
rendering, reply parsing, sandboxed execution of every program, dedup and parquet commits.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402

from orchestrator.cli import build_config  # noqa: E402
from orchestrator.engine import run_job  # noqa: E402
from orchestrator.records import Record  # noqa: E402
from tests.support.scripted_server import ScriptedServer  # noqa: E402
from tests.support.tinygsm_teacher import tinygsm_reply  # noqa: E402


def synthetic_seeds(n: int) -> list[Record]:
    return [
        Record.seed(
            f"Sam has {i + 3} boxes with {i % 7 + 2} pens each. How many pens?", None, "bench"
        )
        for i in range(n)
    ]


def measure(workers: int, concurrency: int, latency: float, seconds_of_work: float) -> float:
    ideal = workers * concurrency / latency
    n = max(int(ideal * seconds_of_work), workers * concurrency * 2)
    with ScriptedServer(reply=tinygsm_reply, latency=latency, record_requests=False) as srv:
        cfg, _ = build_config("tinygsm", {
            "teacher": {"base_url": srv.base_url, "model": "bench"},
            "run": {"workers": workers, "concurrency": concurrency,
                    "commit_every_seeds": max(8, concurrency // 2)},
            "tinygsm": {"problems_per_seed": 2},
            "decontamination": {"enabled": False},  # measured separately: decontam.py
        })  # fmt: skip
        with tempfile.TemporaryDirectory() as out:
            start = time.monotonic()
            summary = run_job(cfg, synthetic_seeds(n), out)
            elapsed = time.monotonic() - start
    achieved = summary["requests"] / elapsed
    print(
        f"workers={workers} concurrency={concurrency} latency={latency}s seeds={n} "
        f"achieved={achieved:.1f} req/s ideal={ideal:.1f} req/s ratio={achieved / ideal:.2f}",
        flush=True,
    )
    return achieved / ideal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=15.0, help="ideal duration per case")
    parser.add_argument("--cases", default="1x8,2x8,2x32")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)  # fmt: skip
    for case in args.cases.split(","):
        w, c = (int(x) for x in case.split("x"))
        measure(w, c, args.latency, args.seconds)
    ray.shutdown()


if __name__ == "__main__":
    main()
