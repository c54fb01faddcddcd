"""Batch-mates on the warm pool: one program never changes another's result or cost.

Programs of many callers go through ``BatchingExecutor`` onto one pool, as in the worker. Each
hostile case checks the other programs' results, and the pool's counters show that nothing ran
twice and no runner died (a program cannot reach its runner). The last case kills a runner from
outside: only the program it was running runs again. Skipped without root and bubblewrap.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time

import pytest

from orchestrator.sandbox import Sandbox, SandboxLimits, runner
from orchestrator.sandbox.batch import BatchingExecutor

pytestmark = pytest.mark.timeout(120)


def pool_sandbox(**limits: object) -> Sandbox:
    why_not = runner.probe(runner.MODE_POOL)
    if why_not is not None:
        pytest.skip(f"the warm pool does not work here: {why_not}")
    # distinct limits give each test a pool (and counters) of its own
    wall = 3.0 + secrets.randbelow(10**6) / 10**9
    return Sandbox(SandboxLimits(wall_time_s=wall, cpu_time_s=3, **limits), warm=True)  # type: ignore[arg-type]


def valid(i: int) -> str:
    return f"import time\ntime.sleep(0.2)\nprint({i} * 7)\n"


def run_batches(sb: Sandbox, batches: list[list[str]], slots: int = 2) -> list[list]:
    async def main() -> list[list]:
        executor = BatchingExecutor(sb, slots=slots)
        return list(await asyncio.gather(*(executor.run(b) for b in batches)))

    return asyncio.run(main())


def test_batch_matches_single_runs() -> None:
    sb = pool_sandbox()
    programs = ["print(6 * 7)", "raise ValueError('bad')", "import sys; sys.exit(3)",
                "import json; print(json.dumps({'a': 1}))"]  # fmt: skip
    (batch,) = run_batches(sb, [programs])
    single = [sb.run_sync(p) for p in programs]
    assert [r.status for r in batch] == [r.status for r in single] == ["ok", "error", "error", "ok"]
    assert [r.returncode for r in batch] == [r.returncode for r in single]
    assert [r.stdout for r in batch] == [r.stdout for r in single]
    assert "ValueError: bad" in batch[1].stderr and "main.py" in batch[1].stderr
    assert "_warm" not in batch[1].stderr  # the runner's own frame is hidden


KILLER_DAEMON = """
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # the daemon: for 3 s, kill every process it can find
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for name in os.listdir('/proc'):
                if name.isdigit() and int(name) != os.getpid():
                    try:
                        os.kill(int(name), signal.SIGKILL)
                    except OSError:
                        pass
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.01)
        os._exit(0)
    os._exit(0)
print('detached')
"""


def test_a_daemonised_grandchild_cannot_touch_later_programs() -> None:
    sb = pool_sandbox()
    before = sb.stats
    batches = [[KILLER_DAEMON, *[valid(i) for i in range(5)]], [valid(i) for i in range(5, 8)]]
    first, second = run_batches(sb, batches)
    assert first[0].ok and first[0].stdout == "detached\n"
    assert [r.stdout for r in first[1:] + second] == [f"{i * 7}\n" for i in range(8)]
    assert all(r.ok for r in first + second)
    after = sb.stats
    assert after["programs"] - before.get("programs", 0) == 9  # each ran exactly once
    assert after.get("reruns", 0) == after.get("runner_deaths", 0) == 0


@pytest.mark.parametrize(
    "attack",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "import os, signal\nos.kill(1, signal.SIGKILL)",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('alive')",
        "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
    ],
)
def test_killing_the_runner_is_refused_and_hurts_nobody(attack: str) -> None:
    sb = pool_sandbox()
    assert sb.run_sync("pass").ok  # the runner exists before the counts
    before = sb.stats
    (results,) = run_batches(sb, [[valid(0), attack, valid(1), valid(2)]])
    assert [results[i].stdout for i in (0, 2, 3)] == ["0\n", "7\n", "14\n"]
    assert results[1].status in ("error", "ok"), results[1]  # EPERM/ESRCH, never a kill
    after = sb.stats
    assert after["programs"] - before["programs"] == 4
    assert after.get("runner_deaths", 0) == after.get("reruns", 0) == 0


SNOOP = r"""
import os, re
pat = re.compile(rb"mathsynth-batchmate-([0-9a-f]{32})")
mine = "mathsynth-batchmate-" + "f" * 32  # proves the scan sees this process's memory
found, scanned = set(), 0
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
    for line in maps:
        addr, perms = line.split()[:2]
        start, end = (int(x, 16) for x in addr.split("-"))
        if "r" not in perms or end - start > 1 << 28:
            continue
        try:
            mem.seek(start)
            chunk = mem.read(end - start)
        except (OSError, ValueError, OverflowError):
            continue
        scanned += len(chunk)
        found.update(m.group(1).decode() for m in pat.finditer(chunk))
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as fh:
                found.update(m.group(1).decode() for m in pat.finditer(fh.read()))
        except OSError:
            pass
import json, sys
names = sorted(k for k in vars(sys.modules["__main__"]) if k[:2] != "__")
print(json.dumps({"found": sorted(found), "scanned": scanned, "names": names, "mine": mine}))
"""


def test_a_program_sees_nothing_of_earlier_or_concurrent_programs() -> None:
    """In one batch, two at a time: the first program ends at once (the snoop then runs on its
    runner), the second sleeps while the snoop reads all of its own memory and ``/proc``."""
    sb = pool_sandbox()
    tags = [secrets.token_hex(16) for _ in range(3)]
    secret = 'TAG = "mathsynth-batchmate-{}"\nimport time\ntime.sleep({})\nprint(len(TAG))\n'
    batch = [secret.format(tags[0], 0), secret.format(tags[1], 2), SNOOP, secret.format(tags[2], 0)]
    (results,) = run_batches(sb, [batch], slots=2)
    assert all(r.ok for r in results), results
    report = json.loads(results[2].stdout)
    assert report["scanned"] > 10**6  # it did read its whole memory...
    assert report["found"] == ["f" * 32]  # ...and found only its own marker, no batch-mate's
    assert set(report["names"]) <= {"found", "scanned", "pat", "mine", "os", "re", "json",
                                    "sys", "names", "maps", "mem", "line", "addr", "perms",
                                    "start", "end", "chunk", "pid", "name", "fh"}  # fmt: skip
    assert results[1].duration_s > results[2].duration_s  # the snoop ran beside the sleeper


def test_a_runner_death_reruns_only_its_program() -> None:
    sb = pool_sandbox()
    pool = sb._pool()
    victim = pool.submit("import time\ntime.sleep(1.5)\nprint('victim done')")
    others = [pool.submit(valid(i)) for i in range(4)]
    deadline = time.monotonic() + 20
    while victim.runner is None or victim.runner.proc.pid is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.5)  # it is running now
    before = dict(pool.stats)
    os.kill(victim.runner.proc.pid, signal.SIGKILL)  # as an OOM kill would
    assert victim.future.result(30).stdout == "victim done\n"
    assert [j.future.result(30).stdout for j in others] == [f"{i * 7}\n" for i in range(4)]
    after = pool.stats
    assert after["runner_deaths"] - before.get("runner_deaths", 0) == 1
    assert after["reruns"] - before.get("reruns", 0) == 1
    assert after["programs"] == 6  # 5 programs, the victim twice


def test_cancelling_one_caller_leaves_the_others_alone() -> None:
    sb = pool_sandbox()

    async def main() -> list[list[str]]:
        executor = BatchingExecutor(sb, slots=2)
        jobs = [executor.run([f"print({i} * 10 + {j})" for j in range(3)]) for i in range(4)]
        victim = asyncio.ensure_future(executor.run(["import time; time.sleep(30)"] * 2))
        await asyncio.sleep(0.3)
        victim.cancel()
        results = await asyncio.gather(*jobs)
        with pytest.raises(asyncio.CancelledError):
            await victim
        return [[r.stdout.strip() for r in rs] for rs in results]

    start = time.monotonic()
    assert asyncio.run(main()) == [[str(i * 10 + j) for j in range(3)] for i in range(4)]
    assert time.monotonic() - start < 20


def test_executor_load_counts_queued_and_running_programs_and_busy_time() -> None:
    """What the dashboard shows for the sandbox: with one slot, one sleeping program runs while
    the others wait; slot-seconds add up to the time the slot was held; a caller cancelled
    while waiting leaves nothing counted."""
    from orchestrator.sandbox.batch import BatchingExecutor

    sleep = "import time; time.sleep(0.6)"
    sandbox = pool_sandbox()

    async def main() -> tuple[list[dict[str, float]], dict[str, float]]:
        executor = BatchingExecutor(sandbox, slots=1)
        assert executor.load() == {"queued": 0, "running": 0, "slots": 1, "busy_s": 0.0}
        first = asyncio.ensure_future(executor.run([sleep, sleep]))  # one runs, one waits
        second = asyncio.ensure_future(executor.run([sleep, sleep]))  # both wait
        victim = asyncio.ensure_future(executor.run(["print(1)"]))  # waits, then cancelled
        await asyncio.sleep(0.3)
        during = [executor.load()]
        victim.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        during.append(executor.load())
        return during, executor.load()

    (busy, after_all), final = asyncio.run(main())
    assert busy["running"] == 1 and busy["queued"] == 4, busy  # 1 + 2 + the victim's 1 wait
    # the victim was cancelled before it had the slot: it never ran
    assert after_all["running"] == 0 and final["queued"] == 0, (after_all, final)
    # four 0.6-s programs, one after the other, on the one slot
    assert final["busy_s"] >= 4 * 0.6 * 0.9, final
