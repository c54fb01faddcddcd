"""Do we keep a slow teacher saturated? Two measurements, both printing achieved / ideal.

``client`` (the issue's measurement): the scripted OpenAI-compatible server runs as a separate
process on 127.0.0.1 and answers every request after ``--latency`` seconds (1 s). For each
in-flight cap C in ``--caps`` (8, 64, 256, 512), ``--procs`` Ray actors keep C requests in
flight between them (C / procs each) for ``--seconds``; the ideal rate is C / latency. Requests
completed inside the measured window (after ``--warm`` seconds, so the first round trip is not
counted as lost time) are divided by the window and by the ideal. ``--path chat`` calls
``TeacherClient.chat`` directly; ``--path ask`` goes through ``ask_teacher`` (the workers'
path) with the job's ``RateLimiter`` actor enforcing ``max_in_flight = C`` job-wide (two actor
calls per request). Each row also prints the CPU milliseconds per request spent by the
senders and by the server in the window: that, against the machine's cores, is the ceiling.

``engine``: the whole engine runs (Ray actors, prompt rendering, reply parsing, sandboxed
execution of every program, dedup and parquet commits) with W workers x C requests in flight;
the ideal is W*C/latency.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402

from orchestrator.core.records import Record  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ client path
@ray.remote(num_cpus=0)
class Sender:
    """Keeps ``concurrency`` teacher requests in flight and counts those done in the window."""

    async def run(
        self, settings_json: str, limiter: Any, path: str, concurrency: int,
        start_at: float, warm: float, seconds: float,
    ) -> dict[str, float]:  # fmt: skip
        from orchestrator.core.sampling import SamplingParams
        from orchestrator.engine.context import StepContext
        from orchestrator.engine.teacher_calls import ask_teacher
        from orchestrator.teacher.client import TeacherClient, TeacherError
        from orchestrator.teacher.limiter_client import LimiterClient
        from orchestrator.teacher.settings import TeacherSettings

        settings = TeacherSettings.model_validate_json(settings_json)
        client = TeacherClient(settings, api_key="bench")
        limiter_client = LimiterClient(limiter, settings.limits) if limiter is not None else None
        if limiter_client is not None:
            client.on_attempt = limiter_client.observe
        ctx = StepContext(
            teacher=client, request_slots=asyncio.Semaphore(concurrency),
            executor=None, limiter=limiter_client,  # type: ignore[arg-type]
        )  # fmt: skip
        sampling = SamplingParams(max_tokens=64, temperature=0.0)
        messages = [{"role": "user", "content": "Say something about the number 12."}]
        t_from, t_to = start_at + warm, start_at + warm + seconds
        counts = {"done": 0.0, "failed": 0.0, "cpu_s": 0.0}

        async def loop() -> None:
            while time.time() < t_to:
                try:
                    if path == "ask":
                        await ask_teacher(ctx, messages, sampling)
                    else:
                        await client.chat(messages, max_tokens=64, temperature=0.0)
                except TeacherError:
                    counts["failed"] += 1
                    continue
                if t_from <= time.time() < t_to:
                    counts["done"] += 1

        async def cpu_in_window() -> None:
            await asyncio.sleep(max(0.0, t_from - time.time()))
            cpu = time.process_time()
            await asyncio.sleep(max(0.0, t_to - time.time()))
            counts["cpu_s"] = time.process_time() - cpu

        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(cpu_in_window(), *(loop() for _ in range(concurrency)))
        await client.close()
        return counts


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "tests.support.scripted_server", "--port", "0",
           "--latency", str(latency), "--no-record"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"scripted server did not start: {line}")
    return proc, line[1]


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def measure_client(
    base_url: str, server_pid: int, cap: int, args: argparse.Namespace
) -> dict[str, float]:
    from orchestrator.teacher.ratelimit import RateLimiter
    from orchestrator.teacher.settings import RateLimits, TeacherSettings

    limits = RateLimits(max_in_flight=cap) if args.path == "ask" else RateLimits()
    settings = TeacherSettings(
        base_url=base_url, model="bench", read_timeout_s=60, limits=limits,
        use_aiohttp=not args.httpx,
    ).model_dump_json()  # fmt: skip
    limiter = RateLimiter.remote(limits.model_dump()) if args.path == "ask" else None
    pids = [server_pid]
    if limiter is not None:
        pids.append(ray.get(limiter.__ray_call__.remote(lambda self: os.getpid())))
    procs = min(args.procs, cap)
    senders = [Sender.remote() for _ in range(procs)]
    ray.get([s.__ray_ready__.remote() for s in senders])
    shares = [cap // procs + (i < cap % procs) for i in range(procs)]
    start_at = time.time() + 0.5
    refs = [
        s.run.remote(settings, limiter, args.path, n, start_at, args.warm, args.seconds)
        for s, n in zip(senders, shares, strict=True)
    ]
    time.sleep(max(0.0, start_at + args.warm - time.time()))
    cpu0 = [proc_cpu_s(pid) for pid in pids]
    time.sleep(max(0.0, start_at + args.warm + args.seconds - time.time()))
    server_cpu, *limiter_cpu = (proc_cpu_s(pid) - c for pid, c in zip(pids, cpu0, strict=True))
    results = ray.get(refs)
    for actor in [*senders, *([limiter] if limiter is not None else [])]:
        ray.kill(actor)
    done = sum(r["done"] for r in results)
    achieved = done / args.seconds
    ideal = cap / args.latency
    row = {
        "cap": cap, "achieved": achieved, "ideal": ideal, "ratio": achieved / ideal,
        "failed": sum(r["failed"] for r in results),
        "client_ms": 1000 * sum(r["cpu_s"] for r in results) / max(done, 1),
        "server_ms": 1000 * server_cpu / max(done, 1),
        "limiter_ms": 1000 * sum(limiter_cpu) / max(done, 1),
    }  # fmt: skip
    print(
        f"path={args.path} procs={procs} cap={cap} achieved={achieved:.1f} req/s "
        f"ideal={ideal:.1f} req/s ratio={row['ratio']:.3f} failed={row['failed']:.0f} "
        f"cpu/request: senders {row['client_ms']:.2f} ms, server {row['server_ms']:.2f} ms"
        + (f", limiter {row['limiter_ms']:.2f} ms" if limiter is not None else ""),
        flush=True,
    )
    return row


# ------------------------------------------------------------------------------ engine
def synthetic_seeds(n: int) -> list[Record]:
    return [
        Record.seed(
            f"Sam has {i + 3} boxes with {i % 7 + 2} pens each. How many pens?", None, "bench"
        )
        for i in range(n)
    ]


def measure_engine(workers: int, concurrency: int, latency: float, seconds_of_work: float) -> float:
    from orchestrator.cli.app import build_config
    from orchestrator.engine.driver import run_job
    from tests.support.scripted_server import ScriptedServer
    from tests.support.tinygsm_teacher import tinygsm_reply

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
    parser.add_argument("mode", nargs="?", choices=["client", "engine"], default="client")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--caps", default="8,64,256,512", help="client: in-flight caps")
    parser.add_argument("--path", choices=["chat", "ask"], default="chat")
    parser.add_argument("--procs", type=int, default=1, help="client: sender actors per cap")
    parser.add_argument("--httpx", action="store_true", help="client: the SDK's httpx transport")
    parser.add_argument("--warm", type=float, default=2.0, help="client: seconds not counted")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window / ideal")
    parser.add_argument("--cases", default="1x8,2x8,2x32", help="engine: WORKERSxCONCURRENCY")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)  # fmt: skip
    try:
        if args.mode == "engine":
            for case in args.cases.split(","):
                w, c = (int(x) for x in case.split("x"))
                measure_engine(w, c, args.latency, args.seconds)
            return
        server, base_url = start_server(args.latency)
        try:
            for cap in (int(c) for c in args.caps.split(",")):
                measure_client(base_url, server.pid, cap, args)
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
