"""A stand-in Ray job driver for ``mathsynth watch`` tests: prints the JSON progress events
``mathsynth run --json`` prints (through the same ``ProgressDisplay``), with counters that
grow, then the summary. With ``--hub OUT`` it also starts the job's named metrics hub on the
cluster (``RAY_ADDRESS``, set by Ray for a job) and pushes the same counters to it, so they
reach Ray's metrics export. It runs no pipeline.

    python tests/support/job_events.py --steps 6 --interval 0.5 [--hub OUT] [--linger 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from orchestrator.telemetry.progress import ProgressDisplay  # noqa: E402


def view(step: int, steps: int) -> dict:
    return {
        "state": "running" if step < steps else "finished",
        "counters": {
            "seeds": {"accepted": step},
            "teacher": {"requests": 2 * step, "completion_tokens": 100 * step},
            "execute": {"seen": 4 * step, "kept": 3 * step, "dropped:timeout": step},
            "writer": {"rows": 3 * step},
        },
        "gauges": {"in_flight": 1},
        "total_seeds": steps,
        "skipped": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--hub", default=None)
    parser.add_argument("--linger", type=float, default=0.0)
    args = parser.parse_args()
    hub = None
    if args.hub:
        import ray

        from orchestrator.telemetry.metrics import start_hub

        ray.init(logging_level="ERROR")
        hub = start_hub(args.hub)
    print("job driver starting", flush=True)
    display = ProgressDisplay(mode="json", json_every_s=0)
    with display:
        for step in range(1, args.steps + 1):
            if hub is not None:
                hub.push.remote(
                    "w0", {"execute": {"seen": 4, "dropped:timeout": 1}}, {"in_flight": 1}
                )
            display.update(view(step, args.steps))
            time.sleep(args.interval)
    display.finish({"rows_written": 3 * args.steps, "seeds_accepted": args.steps})
    time.sleep(args.linger)


if __name__ == "__main__":
    main()
