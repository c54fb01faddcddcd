"""The least any run made of Ray actors that send through the ``openai`` client costs on this
machine, measured, for ``overhead.py`` to set its figures against.

Two floors, each with nothing of mathsynth in it:

- ``ray_floor``: a Python that imports ``ray``, starts a private Ray as a run does (loopback
  only, no dashboard), starts ``workers`` actors that import ``openai`` and answer one call,
  and shuts Ray down: seconds from spawn to exit, and the peak summed RSS of its process tree
  (sampled as ``overhead.py`` samples a run). No request is sent.
- ``client_ceiling``: requests/s of the ``openai`` client alone (``AsyncOpenAI`` on the aiohttp
  transport, as the workers use it), ``workers`` processes with ``concurrency`` requests in
  flight in all, against the same scripted server, timed from the moment every process has
  imported it to the last reply.

``PeakRss`` samples a process tree's peak summed RSS while it runs (for both scripts).
``best_rate`` combines the floors: a run of ``n`` one-call seeds cannot beat ``n / (floor + n /
ceiling)`` records/s over the whole process, whatever it does between. It does not measure
mathsynth and asserts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RAY_FLOOR_SOURCE = """
import sys
import ray

ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
         logging_level="WARNING")


@ray.remote
class Worker:
    def __init__(self):
        import openai  # noqa: F401 (what a worker needs to send a request)

    def ping(self):
        return 1


workers = [Worker.remote() for _ in range(int(sys.argv[1]))]
ray.get([w.ping.remote() for w in workers])
ray.shutdown()
"""

CLIENT_SOURCE = """
import asyncio, sys, time
import openai

base_url, n, lanes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("READY", flush=True)
sys.stdin.readline()  # go


async def main():
    client = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0,
                                http_client=openai.DefaultAioHttpClient())
    left = [n]

    async def lane():
        while left[0] > 0:
            left[0] -= 1
            await client.chat.completions.create(
                model="scripted", max_tokens=64,
                messages=[{"role": "user", "content": "Problem: Ann has 3 apples."}])

    await asyncio.gather(*(lane() for _ in range(lanes)))
    await client.close()


asyncio.run(main())
print("DONE", flush=True)
"""


def ray_floor(workers: int, tree_rss: Callable[[int], int]) -> dict[str, float]:
    """Spawn-to-exit seconds and peak summed RSS (MiB) of a bare private Ray with ``workers``
    actors (module doc)."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # loopback only
    env.pop("RAY_ADDRESS", None)
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-c", RAY_FLOOR_SOURCE, str(workers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    peak = PeakRss(proc, tree_rss)
    _, err = proc.communicate()
    wall = time.time() - started
    if proc.returncode != 0:
        raise SystemExit(f"the bare Ray floor exited {proc.returncode}:\n{err[-3000:]}")
    return {"wall_s": wall, "peak_rss_mib": peak.mib()}


class PeakRss:
    """The peak of ``tree_rss(proc.pid)``, sampled every 0.1 s on a thread until ``proc`` exits."""

    def __init__(self, proc: subprocess.Popen[str], tree_rss: Callable[[int], int]) -> None:
        self.peak = 0
        self._proc, self._tree_rss = proc, tree_rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while self._proc.poll() is None:
            self.peak = max(self.peak, self._tree_rss(self._proc.pid))
            time.sleep(0.1)

    def mib(self) -> float:
        """Once the process has exited: the peak in MiB."""
        self._thread.join()
        return self.peak / 2**20


def client_ceiling(base_url: str, workers: int, concurrency: int, n: int = 4000) -> float:
    """Requests/s of the ``openai`` client alone, ``workers`` processes (module doc)."""
    lanes = max(1, concurrency // workers)
    cmd = [sys.executable, "-c", CLIENT_SOURCE, base_url, str(n // workers), str(lanes)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(workers)]  # fmt: skip
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "READY":
                raise SystemExit("an openai client process did not start")
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "DONE":
                raise SystemExit("an openai client process failed")
        elapsed = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return (n // workers) * workers / elapsed


def best_rate(n_seeds: int, floor_s: float, ceiling_rps: float) -> float:
    """The most whole-process records/s ``n_seeds`` one-call seeds can reach (module doc)."""
    return n_seeds / (floor_s + n_seeds / ceiling_rps)
