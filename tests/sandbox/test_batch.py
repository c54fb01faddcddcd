"""Batched execution: many programs in one sandbox process behave as if each ran alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestrator.sandbox import Sandbox, SandboxLimits
from orchestrator.sandbox.batch import RUNNER, run_batch


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxLimits(wall_time_s=2.0, cpu_time_s=2, max_output_bytes=4096))


def statuses(results) -> list[str]:
    return [r.status for r in results]


def test_batch_matches_single_runs(sandbox: Sandbox) -> None:
    programs = ["print(6 * 7)", "raise ValueError('bad')", "import sys; sys.exit(3)",
                "import json; print(json.dumps({'a': 1}))"]  # fmt: skip
    batch = asyncio.run(run_batch(sandbox, programs))
    single = [sandbox.run_sync(p) for p in programs]
    assert statuses(batch) == statuses(single) == ["ok", "error", "error", "ok"]
    assert [r.returncode for r in batch] == [r.returncode for r in single]
    assert [r.stdout for r in batch] == [r.stdout for r in single]
    assert "ValueError: bad" in batch[1].stderr and "main.py" in batch[1].stderr
    assert "<string>" not in batch[1].stderr  # the runner's own frame is hidden


def test_hostile_programs_do_not_disturb_their_batch_mates(sandbox: Sandbox) -> None:
    programs = [
        "print('first')",
        "while True: pass",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "print('x' * 10_000_000)",
        "x = []\nwhile True: x.append(bytearray(10**7))",
        "open('/etc/mathsynth-batch-probe', 'w').write('x')",
        "print('last')",
    ]
    results = asyncio.run(run_batch(sandbox, programs))
    assert results[0].stdout == "first\n" and results[-1].stdout == "last\n"
    assert results[1].status in ("timeout", "killed")
    assert results[2].status in ("timeout", "killed", "error")
    assert results[3].truncated and len(results[3].stdout) <= 4096
    assert results[4].status in ("killed", "error")
    assert results[5].status == "error"
    assert not Path("/etc/mathsynth-batch-probe").exists()


def test_a_program_that_kills_the_runner_falls_back_to_single_runs(sandbox: Sandbox) -> None:
    programs = ["print(1)", "import os, signal; os.kill(os.getppid(), signal.SIGKILL)", "print(3)"]
    results = asyncio.run(run_batch(sandbox, programs))
    assert results[0].stdout == "1\n" and results[2].stdout == "3\n"
    assert len(results) == 3


def test_runner_is_plain_python() -> None:
    compile(RUNNER, "runner", "exec")


def test_batching_executor_shares_batches_and_returns_each_callers_results(
    sandbox: Sandbox,
) -> None:
    from orchestrator.sandbox.batch import BatchingExecutor

    calls: list[int] = []

    async def main() -> list[list[str]]:
        executor = BatchingExecutor(sandbox, slots=1, max_batch=12, linger_s=0.05)
        original = executor._execute

        async def counting(batch):  # count sandbox processes started
            calls.append(sum(len(p) for p, _ in batch))
            await original(batch)

        executor._execute = counting  # type: ignore[method-assign]
        jobs = [executor.run([f"print({i} * 10 + {j})" for j in range(3)]) for i in range(8)]
        victim = asyncio.ensure_future(executor.run(["import time; time.sleep(0.5)"]))
        await asyncio.sleep(0)
        victim.cancel()
        results = await asyncio.gather(*jobs)
        return [[r.stdout.strip() for r in rs] for rs in results]

    outputs = asyncio.run(main())
    assert outputs == [[str(i * 10 + j) for j in range(3)] for i in range(8)]
    assert len(calls) < 8  # callers shared sandbox processes
    assert sum(calls) == 8 * 3 + 1


def test_executor_load_counts_queued_and_running_programs_and_busy_time(
    sandbox: Sandbox,
) -> None:
    """What the dashboard shows for the sandbox: with one slot, a batch of two sleeping
    programs runs while the next two wait; slot-seconds add up to the time the slot was held;
    a caller cancelled while waiting leaves nothing counted."""
    from orchestrator.sandbox.batch import BatchingExecutor

    sleep = "import time; time.sleep(0.6)"

    async def main() -> tuple[list[dict[str, float]], dict[str, float]]:
        executor = BatchingExecutor(sandbox, slots=1, max_batch=2, linger_s=0.01)
        assert executor.load() == {"queued": 0, "running": 0, "slots": 1, "busy_s": 0.0}
        first = asyncio.ensure_future(executor.run([sleep, sleep]))  # full: sent at once
        second = asyncio.ensure_future(executor.run([sleep, sleep]))  # waits for the slot
        victim = asyncio.ensure_future(executor.run(["print(1)"]))  # waits, then cancelled
        await asyncio.sleep(0.3)
        during = [executor.load()]
        victim.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        during.append(executor.load())
        return during, executor.load()

    (busy, after_all), final = asyncio.run(main())
    assert busy["running"] == 2 and busy["queued"] == 3, busy  # 2 + the victim's 1 wait
    # the victim was cancelled before its batch had the slot: it never ran
    assert after_all["running"] == 0 and final["queued"] == 0, (after_all, final)
    # two batches of two 0.6-s programs, one after the other, on the one slot
    assert final["busy_s"] >= 2 * 1.2 * 0.9, final
