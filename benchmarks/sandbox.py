"""How cheap is a sandboxed program? The warm pool vs a naive subprocess per program and vs the
fork floor, and the full TinyGSM pipeline's seeds/s.

``programs`` (default): the same 2,000 TinyGSM programs (what the one-step pipeline executes:
the scripted teacher's programs in TinyGSM function form plus the result harness) run

* naively: ``subprocess.run([python, "-c", code])`` per program, no sandbox at all, two at a
  time (two cores);
* on the warm pool (``Sandbox`` as root with bubblewrap: a bubblewrap jail per runner, one fork
  per program, own uid and pid namespace, no IPC objects, tmpfs work dir, limits), two
  runners, through ``BatchingExecutor(slots=2)`` as the worker uses it;
* at the fork floor (``sandbox_floor``): compile, fork, run, exit in two plain preloaded
  Pythons, no isolation at all: the least a fork per program costs here;

in chunks whose arm order rotates (``--rounds``, so load drift on a shared machine hits every
arm), and prints programs/s, CPU ms per program of each arm's processes (naive: this process
plus its children; pool: this process, its pool thread included, plus the runners and
everything they forked, read from ``/proc``; floor: its Pythons and their children) and machine
CPU ms per program (``/proc/stat``: kernel threads included, e.g. namespace teardown), and the
ratios to naive (target: >= 20x the naive rate; the floor's ratio is the most any
one-fork-per-program design reaches). All arms must produce the same stdout for every program,
and the pool must be the isolation the containment tests check (``tests/sandbox``; run them,
this script does not).

``pipeline``: the whole engine (Ray on 2 CPUs, 2 workers, the scripted teacher on loopback with
zero latency, one-step TinyGSM with 10 problems per seed, dedup, parquet commits): seeds/s over
``--seeds`` seeds (target >= 100) and machine CPU ms per seed (100 seeds/s on 2 cores allows
20).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from benchmarks.sandbox_floor import fork_floor, machine_cpu_s  # noqa: E402
from benchmarks.saturation import synthetic_seeds  # noqa: E402
from orchestrator.core.prompts import load_template  # noqa: E402
from orchestrator.core.records import Record  # noqa: E402
from orchestrator.methods.tinygsm.execute import RunProgram  # noqa: E402
from orchestrator.methods.tinygsm.function_form import (  # noqa: E402
    ProgramFormatError,
    to_tinygsm_function,
)
from orchestrator.sandbox import Sandbox, SandboxLimits, runner  # noqa: E402
from orchestrator.sandbox.batch import BatchingExecutor  # noqa: E402
from orchestrator.sandbox.warm_runner import PRELOAD  # noqa: E402
from tests.support.tinygsm_teacher import plan_one_step  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")
ARMS = ("naive", "pool", "floor")


def tinygsm_programs(n: int) -> list[str]:
    """``n`` programs as the one-step pipeline runs them (unparsable ones left out)."""
    template, run = load_template("tinygsm/one_step"), RunProgram(1e15)
    out: list[str] = []
    for seed in synthetic_seeds(n):
        for item in plan_one_step(template.render(seed=seed, n=10)):
            try:
                code = to_tinygsm_function(item.question, item.program)
            except ProgramFormatError:
                continue
            out.append(run.program(Record(id="b", question=item.question, code=code)))
            if len(out) == n:
                return out
    return out


def naive(programs: list[str], parallel: int) -> tuple[float, float, float, list[str]]:
    """(wall s, CPU s, machine CPU s, stdouts) of ``python -c`` per program, ``parallel`` at a
    time."""

    def one(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
        return done.stdout.decode()

    before, cpu = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
    start, machine = time.monotonic(), machine_cpu_s()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        outs = list(pool.map(one, programs))
    wall, machine = time.monotonic() - start, machine_cpu_s() - machine
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, children + time.process_time() - cpu, machine, outs


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, its threads and its reaped descendants, then its live children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = sum(int(x) for x in fields[11:15]) / _TICK
    return own + sum(_tree_cpu(int(k)) for k in kids)


def runners_cpu(sb: Sandbox) -> float:
    return sum(_tree_cpu(r.proc.pid) for r in sb._pool()._runners)


def pooled(
    sb: Sandbox, programs: list[str], slots: int
) -> tuple[float, float, float, float, list[str]]:
    """(wall s, host CPU s, runners' CPU s, machine CPU s, stdouts) through
    ``BatchingExecutor``."""

    async def main() -> list[str]:
        executor = BatchingExecutor(sb, slots=slots)
        return [r.stdout for r in await executor.run(programs)]

    jail, cpu, machine = runners_cpu(sb), time.process_time(), machine_cpu_s()
    start = time.monotonic()
    outs = asyncio.run(main())
    wall, machine = time.monotonic() - start, machine_cpu_s() - machine
    return wall, time.process_time() - cpu, runners_cpu(sb) - jail, machine, outs


def bench_programs(args: argparse.Namespace) -> None:
    why_not = runner.probe(runner.MODE_POOL)
    if why_not is not None:
        sys.exit(f"the warm pool does not work here: {why_not}")
    programs = tinygsm_programs(args.programs)
    print(f"{len(programs)} TinyGSM programs; load average {os.getloadavg()[0]:.1f}", flush=True)
    sb = Sandbox(SandboxLimits(), warm=True)
    assert sb.isolation == runner.ISOLATION_POOL
    pooled(sb, programs[:20], args.parallel)  # start the runners
    wall = dict.fromkeys(ARMS, 0.0)
    cpu = dict.fromkeys(ARMS, 0.0)
    machine = dict.fromkeys(ARMS, 0.0)
    outs: dict[str, list[str]] = {arm: [] for arm in ARMS}
    host = jail = 0.0
    step = -(-len(programs) // args.rounds)
    for i in range(0, len(programs), step):  # arm order rotates, so load drift hits all three
        chunk = programs[i : i + step]
        k = (i // step) % 3
        for arm in (ARMS * 2)[k : k + 3]:
            if arm == "pool":
                took, h, j, m, got = pooled(sb, chunk, args.parallel)
                host, jail, c = host + h, jail + j, h + j
            elif arm == "naive":
                took, c, m, got = naive(chunk, args.parallel)
            else:
                took, c, m, got = fork_floor(chunk, args.parallel, list(PRELOAD))
            wall[arm], cpu[arm], machine[arm] = wall[arm] + took, cpu[arm] + c, machine[arm] + m
            outs[arm] += got
    same = sum(a == b == c for a, b, c in zip(*outs.values(), strict=True))
    n = len(programs)
    print(f"{'':18}{'programs/s':>10}  {'CPU ms/program':>14}  {'machine CPU ms/program':>22}")
    for arm, label in zip(ARMS, ("naive subprocess", "warm pool", "fork floor"), strict=True):
        note = {"pool": f"  (host {host / n * 1e3:.2f}, runners {jail / n * 1e3:.2f})",
                "floor": "  (fork, run, exit; no isolation at all)"}.get(arm, "")  # fmt: skip
        print(f"{label:18}{n / wall[arm]:10.1f}  {cpu[arm] / n * 1e3:14.2f}  "
              f"{machine[arm] / n * 1e3:22.2f}{note}")  # fmt: skip
    print(f"ratio: {wall['naive'] / wall['pool']:.1f}x programs/s (target >= 20x), "
          f"{machine['naive'] / machine['pool']:.1f}x less machine CPU per program; "
          f"same stdout for {same}/{n} in all arms")  # fmt: skip
    print(f"the fork floor's ratio, the most any one-fork-per-program design reaches here: "
          f"{wall['naive'] / wall['floor']:.1f}x programs/s, "
          f"{machine['naive'] / machine['floor']:.1f}x less machine CPU; the pool costs "
          f"{machine['pool'] / machine['floor']:.2f}x the floor's machine CPU per program")  # fmt: skip


def bench_pipeline(args: argparse.Namespace) -> None:
    import ray

    from orchestrator.cli.app import build_config
    from orchestrator.engine.driver import run_job
    from tests.support.scripted_server import ScriptedServer
    from tests.support.tinygsm_teacher import tinygsm_reply

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)  # fmt: skip
    try:
        with ScriptedServer(reply=tinygsm_reply, latency=0.0, record_requests=False) as srv:
            cfg, _ = build_config("tinygsm", {
                "teacher": {"base_url": srv.base_url, "model": "bench"},
                "run": {"workers": 2, "concurrency": args.concurrency,
                        "commit_every_seeds": args.commit_every},
                "tinygsm": {"problems_per_seed": 10},
                "decontamination": {"enabled": False},
            })  # fmt: skip
            for round_ in range(args.pipeline_rounds):
                seeds = synthetic_seeds(args.seeds + round_)[round_:]
                with tempfile.TemporaryDirectory() as out:
                    start, machine = time.monotonic(), machine_cpu_s()
                    summary = run_job(cfg, seeds, out)
                    wall, machine = time.monotonic() - start, machine_cpu_s() - machine
                done = summary["seeds_accepted"] + summary["seeds_rejected"]
                print(f"round {round_}: {done} of {len(seeds)} seeds done in {wall:.1f}s = "
                      f"{done / wall:.1f} seeds/s (target >= 100: 20 ms of machine CPU per "
                      f"seed on 2 cores), {machine / done * 1e3:.1f} ms of machine CPU per "
                      f"seed, {summary['rows_written']} rows, {summary['seeds_failed']} failed; "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["programs", "pipeline"], default="programs")
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--parallel", type=int, default=2, help="programs at once (both arms)")
    parser.add_argument("--rounds", type=int, default=10, help="programs: alternating chunks")
    parser.add_argument("--seeds", type=int, default=600, help="pipeline: seeds per round")
    parser.add_argument("--pipeline-rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--commit-every", type=int, default=32)
    args = parser.parse_args()
    if args.mode == "programs":
        bench_programs(args)
    else:
        bench_pipeline(args)


if __name__ == "__main__":
    main()
