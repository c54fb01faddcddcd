"""The plain path's overhead: whole-process records/s, time to the first request, and the peak
memory of the whole process tree, for one teacher call per seed.

The lightest honest configuration: a one-call method written with the public API (the
teacher rewrites the seed problem; one row per reply, its last number as the answer), exact
dedup on, near dedup and decontamination off, no sandbox, the reply log on, every row committed
as usual. ``mathsynth run`` runs as a subprocess (private Ray and all) against the scripted
OpenAI-compatible server in its own process with zero latency. For each seed count it prints:

- records/s over the whole process (spawn to exit) and from the first request to the exit;
- seconds from spawn to the first request the server received (the run's teacher check) and
  to the second (the first seed's);
- the peak RSS of the whole process tree (the driver, Ray's GCS and raylet, every worker),
  sampled every 0.1 s, and its ratio to the smallest run's;

and once, the teacher ceiling: requests/s a bare aiohttp client gets from the same server at
64 in flight (what no client can beat on this machine), and the floors of ``overhead_floors``:
a bare private Ray with the run's number of actors (start to shutdown: seconds and peak RSS)
and the ``openai`` client's own requests/s, from which each size's best possible whole-process
records/s for any run of Ray actors sending through that client. Ratios come from one
invocation; asserts nothing. Targets (issue 13): >= 500 records/s at 2,000 seeds and >= 1,000
at 20,000, first request <= 4 s, RSS <= 1 GB and flat (+-20%) from 20,000 to 200,000 seeds.

    .venv/bin/python benchmarks/overhead.py --sizes 2000,20000,200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.overhead_floors import PeakRss, best_rate, client_ceiling, ray_floor  # noqa: E402

TARGET_RATE = {2000: 500, 20000: 1000}  # issue 13's whole-process records/s
_NUMBER = re.compile(r"-?\d+")

METHOD_SOURCE = '''
"""One teacher call per seed: the teacher rewrites the problem (overhead benchmark)."""
import re
from pathlib import Path

from orchestrator.api import (Completion, Method, PipelineConfig, Record, Rejects,
                              SamplingParams, Step, StrictModel, TeacherStage, TeacherStep,
                              TemplateName)

NUMBER = re.compile(r"-?\\d+")


class Templates(StrictModel):
    rewrite: TemplateName = "rewrite"


class RewriteConfig(StrictModel):
    templates: Templates = Templates()
    sampling: SamplingParams = SamplingParams(temperature=0.0, max_tokens=256)


class Rewrite(TeacherStage):
    name = "rewrite"

    def parse(self, record: Record, completion: Completion, rejects: Rejects) -> list[Record]:
        numbers = NUMBER.findall(completion.text)
        if not numbers:
            rejects.count("no_answer")
            return []
        child = self.derive(record, completion.text.strip(), completion.model)
        child.answer = numbers[-1]
        return [child]


def build_steps(cfg: PipelineConfig) -> list[Step]:
    s = METHOD.section(cfg)
    return [TeacherStep([Rewrite(cfg.template(s.templates.rewrite), s.sampling, "rewrite")])]


METHOD = Method(name="rewrite", build_steps=build_steps, config=RewriteConfig,
                prompts=Path(__file__).parent / "rewrite_prompts",
                request_plan=lambda cfg: [(1, METHOD.section(cfg).sampling)])
'''


def reply(request: dict[str, Any], index: int) -> str:
    """The scripted teacher's answer: the seed problem, reworded, with a number at the end."""
    prompt = request["messages"][-1]["content"]
    problem = prompt.rsplit("Problem:", 1)[-1].strip()
    return f"A new problem like this one. {problem} How many are left? Answer: {len(problem)}"


def write_job(folder: Path, n_seeds: int, base_url: str, workers: int, concurrency: int) -> Path:
    (folder / "rewrite_prompts").mkdir(parents=True, exist_ok=True)
    (folder / "rewrite_method.py").write_text(METHOD_SOURCE)
    (folder / "rewrite_prompts" / "rewrite.j2").write_text(
        "Rewrite this math problem with new names and numbers.\n\nProblem: {{ seed.question }}\n"
    )
    with (folder / "seeds.jsonl").open("w") as fh:
        for i in range(n_seeds):
            question = f"Seed {i}: Ann has {i % 97 + 3} apples and buys {i % 13 + 2} bags of 4."
            fh.write(json.dumps({"question": question, "answer": str(i)}) + "\n")
    pipeline = {
        "name": "overhead", "kind": "rewrite_method:METHOD", "python_path": [str(folder)],
        "teacher": {"base_url": base_url, "model": "scripted"},
        "decontamination": {"enabled": False},
        "dedup": {"exact": True, "near": {"enabled": False}},
        "run": {"workers": workers, "concurrency": concurrency},
    }  # fmt: skip
    path = folder / "pipeline.yaml"
    path.write_text(json.dumps(pipeline))  # JSON is YAML
    return path


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants now."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parent[pid], rss[pid] = int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(pid, 0) for pid in tree)


def server_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=10) as resp:
        return json.loads(resp.read())


def one_run(n_seeds: int, base_url: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pipeline = write_job(folder, n_seeds, base_url, args.workers, args.concurrency)
        before = server_stats(base_url)["requests"]
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        env.pop("RAY_ADDRESS", None)
        cmd = [sys.executable, "-m", "orchestrator", "run", str(pipeline), "--seeds",
               str(folder / "seeds.jsonl"), "--out", str(folder / "out"), "--no-progress"]  # fmt: skip
        started = time.time()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        peak = PeakRss(proc, tree_rss)
        _, err = proc.communicate()
        ended = time.time()
        if proc.returncode != 0:
            raise SystemExit(f"mathsynth run exited {proc.returncode}:\n{err[-3000:]}")
        stats = server_stats(base_url)
        summary = json.loads((folder / "out" / "summary.json").read_text())
    first = stats["first_request_at"] if before == 0 else None  # (the server's first ever)
    work = stats["second_request_at"] if before == 0 else None  # the first seed's request
    rows = summary["rows_written"]
    return {
        "seeds": n_seeds, "rows": rows, "requests": stats["requests"] - before,
        "wall_s": ended - started, "records_per_s": rows / (ended - started),
        "first_request_s": (first - started) if first else float("nan"),
        "first_seed_request_s": (work - started) if work else float("nan"),
        "steady_records_per_s": rows / (ended - first) if first else float("nan"),
        "peak_rss_mib": peak.mib(),
    }  # fmt: skip


async def ceiling(base_url: str, n: int = 4000, in_flight: int = 64) -> float:
    """Requests/s a bare aiohttp client gets from the server (the teacher ceiling)."""
    import aiohttp

    body = {"model": "scripted", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Problem: Ann has 3 apples."}]}  # fmt: skip
    left = [n]

    async def lane(session: aiohttp.ClientSession) -> None:
        while left[0] > 0:
            left[0] -= 1
            async with session.post(f"{base_url}/chat/completions", json=body) as resp:
                await resp.read()

    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        await asyncio.gather(*(lane(session) for _ in range(in_flight)))
        return n / (time.perf_counter() - start)


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The scripted server in its own process (one per run: its first request is the run's)."""
    cmd = [sys.executable, "-m", "tests.support.scripted_server", "--port", "0", "--no-record",
           "--reply", "benchmarks.overhead:reply"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        raise SystemExit(f"scripted server did not start: {line!r}")
    return proc, line.split()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,20000,200000", help="seed counts, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for n in sizes:
        server, base_url = start_server()
        try:
            results.append(one_run(n, base_url, args))
            if n == sizes[0]:
                top = asyncio.run(ceiling(base_url))
                sdk = client_ceiling(base_url, args.workers, args.concurrency)
        finally:
            server.terminate()
            server.wait(timeout=30)
        r = results[-1]
        print(f"{n} seeds: {r['rows']} rows in {r['wall_s']:.1f} s = {r['records_per_s']:.0f} "
              f"records/s whole process, {r['steady_records_per_s']:.0f} from the first request "
              f"(at {r['first_request_s']:.1f} s, the teacher check; the first seed's at "
              f"{r['first_seed_request_s']:.1f} s); peak RSS {r['peak_rss_mib']:.0f} MiB; "
              f"{r['requests']} requests", flush=True)  # fmt: skip
    print(f"teacher ceiling (bare aiohttp, 64 in flight): {top:.0f} requests/s")
    floor = ray_floor(args.workers, tree_rss)
    print(f"floors, nothing of mathsynth in them: a bare private Ray with {args.workers} actors "
          f"that import openai, started and shut down, {floor['wall_s']:.1f} s spawn to exit and "
          f"peak RSS {floor['peak_rss_mib']:.0f} MiB; the openai client alone ({args.workers} "
          f"processes, {args.concurrency} in flight) {sdk:.0f} requests/s")  # fmt: skip
    base = results[0]["peak_rss_mib"]
    for r in results:
        best = best_rate(r["seeds"], floor["wall_s"], sdk)
        target = TARGET_RATE.get(r["seeds"])
        wanted = f", target {target}" if target else ""
        print(f"{r['seeds']} seeds: records/s {r['records_per_s']:.0f} "
              f"({r['records_per_s'] / top:.2f} of the ceiling, {r['records_per_s'] / best:.2f} "
              f"of the best a Ray + openai-client run reaches here: {best:.0f}{wanted}), steady "
              f"{r['steady_records_per_s'] / top:.2f}; first request {r['first_request_s']:.1f} s; "
              f"RSS x{r['peak_rss_mib'] / base:.2f} of the {results[0]['seeds']}-seed run, "
              f"x{r['peak_rss_mib'] / floor['peak_rss_mib']:.2f} of the bare Ray's")  # fmt: skip


if __name__ == "__main__":
    main()
