"""What do the dashboard and metrics cost? The full pipeline with them on vs off.

Both arms run the whole engine (Ray actors, teacher requests to a loopback scripted server
with latency, parsing, sandboxed execution, dedup, parquet commits) over the same seeds into
fresh output directories:

* off: ``run_job(..., telemetry=False)`` and no display. The metrics hub still sums the
  workers' counter pushes, because the run summary is built from it;
* on: ``telemetry=True`` (counters and gauges exported through ``ray.util.metrics``, the
  progress file rewritten every second, per-actor state polled) plus the live ``rich`` panel
  rendered 4 times a second to a terminal console writing to /dev/null.

* metrics: ``telemetry=True`` without a display (what ``mathsynth submit`` jobs pay).

Arms alternate (off, metrics, on; the order rotates each round) so drift on a shared machine hits all; the ratio of
wall time to the "off" run of the same round is printed per round and as the median (target
<= 1.05), with the driver process's CPU seconds (``time.process_time``), which drift on a
loaded machine does not inflate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402
from rich.console import Console  # noqa: E402

from benchmarks.saturation import synthetic_seeds  # noqa: E402
from orchestrator.cli.app import build_config  # noqa: E402
from orchestrator.engine.driver import run_job  # noqa: E402
from orchestrator.telemetry.progress import ProgressDisplay  # noqa: E402
from tests.support.scripted_server import ScriptedServer  # noqa: E402
from tests.support.tinygsm_teacher import tinygsm_reply  # noqa: E402


def one_run(
    base_url: str, seeds: list, workers: int, concurrency: int, arm: str
) -> tuple[float, float]:
    """(wall seconds, driver CPU seconds) of one run."""
    cfg, _ = build_config("tinygsm", {
        "teacher": {"base_url": base_url, "model": "bench"},
        "run": {"workers": workers, "concurrency": concurrency,
                "commit_every_seeds": max(8, concurrency)},
        "tinygsm": {"problems_per_seed": 2},
        "decontamination": {"enabled": False},
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as out, open(os.devnull, "w") as sink:
        start, cpu = time.monotonic(), time.process_time()
        if arm == "on":
            console = Console(file=sink, force_terminal=True, width=160)
            with ProgressDisplay(console, mode="live") as display:
                run_job(cfg, seeds, out, on_progress=display.update, telemetry=True)
        else:
            run_job(cfg, seeds, out, telemetry=arm == "metrics")
        return time.monotonic() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--pairs", type=int, default=3, help="rounds of off/metrics/on")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)  # fmt: skip
    seeds = synthetic_seeds(args.seeds)
    ratios: dict[str, list[float]] = {"metrics": [], "on": []}
    with ScriptedServer(reply=tinygsm_reply, latency=args.latency, record_requests=False) as srv:
        one_run(srv.base_url, seeds[:20], args.workers, args.concurrency, "off")  # warm-up
        for pair in range(args.pairs):
            order = ["off", "metrics", "on"][pair % 3 :] + ["off", "metrics", "on"][: pair % 3]
            runs = {  # the order rotates per round: no arm always runs first (or warmest)
                arm: one_run(srv.base_url, seeds, args.workers, args.concurrency, arm)
                for arm in order
            }
            off = runs["off"][0]
            for arm in ratios:
                ratios[arm].append(runs[arm][0] / off)
            print(f"round {pair}: seeds={args.seeds} " + " ".join(
                f"{arm}={wall:.2f}s (driver cpu {cpu:.2f}s)" for arm, (wall, cpu) in runs.items()
            ) + " ratio metrics/off={:.3f} on/off={:.3f}".format(
                ratios["metrics"][-1], ratios["on"][-1]), flush=True)  # fmt: skip
    for arm, values in ratios.items():
        print(f"median ratio {arm}/off={statistics.median(values):.3f} (target <= 1.05)")
    ray.shutdown()


if __name__ == "__main__":
    main()
