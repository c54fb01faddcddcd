"""The least a fork per program costs on this machine, measured, for ``sandbox.py`` to set the
warm pool against.

``fork_floor`` runs the programs the way any forkserver-style sandbox must at the very least,
and nothing more: ``parallel`` plain Pythons (``-I -S``, the runner's preloaded modules
imported, objects frozen for the collector, as ``_warm`` starts) each compile a program and
fork; the child points stdout at a pipe, runs the code object as ``__main__``, flushes and exits
(status 1, no traceback, when it raises); the parent reads the pipe to EOF and reaps the child.
No jail, no namespace, no uid change, no limits, no work dir, no host round trip, no check of
the result. Its CPU per program (the Pythons and every child, from the first program to the
last; their start-up is left out) bounds the ratio to the naive arm that any
one-fork-per-program design can reach here. ``machine_cpu_s`` reads the whole machine's busy
time, for every arm of ``sandbox.py``. It does not measure mathsynth and asserts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR_SOURCE = """
import gc, json, os, sys, time

for name in json.loads(sys.argv[2]):
    __import__(name)
programs = json.loads(open(sys.argv[1], encoding="utf-8").read())
gc.collect()
gc.freeze()
print("READY", flush=True)
sys.stdin.readline()
before, outs = os.times(), []
for source in programs:
    code = compile(source, "/tmp/main.py", "exec")
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.dup2(out_w, 1)
        status = 0
        try:
            exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        except BaseException:
            status = 1
        sys.stdout.flush()
        os._exit(status)
    os.close(out_w)
    chunks = []
    while chunk := os.read(out_r, 65536):
        chunks.append(chunk)
    os.close(out_r)
    os.waitpid(pid, 0)
    outs.append(b"".join(chunks).decode())
after = os.times()
cpu = sum(after[:4]) - sum(before[:4])
print(json.dumps({"cpu_s": cpu, "outs": outs}), flush=True)
"""


def machine_cpu_s() -> float:
    """Busy seconds of all CPUs since boot (``/proc/stat``: all but idle and iowait), kernel
    threads included: what an arm costs the whole machine, when nothing else runs."""
    with open("/proc/stat", encoding="ascii") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def fork_floor(
    programs: list[str], parallel: int, preload: list[str]
) -> tuple[float, float, float, list[str]]:
    """(wall s, CPU s, machine CPU s, stdouts) of ``programs`` split over ``parallel`` floor
    Pythons, timed from the moment all of them are ready to their reports (module doc)."""
    parts = [programs[i::parallel] for i in range(parallel)]
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for i, part in enumerate(parts):
            path = Path(tmp, f"programs-{i}.json")
            path.write_text(json.dumps(part), encoding="utf-8")
            argv = [sys.executable, "-I", "-S", "-X", "utf8", "-c", FLOOR_SOURCE, str(path),
                    json.dumps(preload)]  # fmt: skip
            procs.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          text=True))  # fmt: skip
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        start, machine = time.monotonic(), machine_cpu_s()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = [json.loads(proc.stdout.readline()) for proc in procs]  # type: ignore[union-attr]
        wall, machine = time.monotonic() - start, machine_cpu_s() - machine
        for proc in procs:
            proc.communicate()
    outs = [""] * len(programs)
    for i, report in enumerate(reports):
        outs[i::parallel] = report["outs"]
    return wall, sum(r["cpu_s"] for r in reports), machine, outs
