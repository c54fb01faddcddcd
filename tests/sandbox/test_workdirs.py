"""Work dirs left by a process killed mid-run are removed by the next ``Sandbox``, and only
those: the dirs of a live process running a sandbox stay (one sandbox per run; the warm pool
writes no work dirs to the host)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from orchestrator.sandbox import Sandbox, SandboxLimits, workdirs

PROJECT_DIR = Path(__file__).resolve().parents[2]

_HOLDER = """
import asyncio, os, sys
from orchestrator.sandbox import Sandbox, SandboxLimits, workdirs
root = sys.argv[1]
sb = Sandbox(SandboxLimits(wall_time_s=120), work_root=root, warm=False)

async def main() -> None:
    task = asyncio.create_task(sb.run("import time\\ntime.sleep(600)"))
    tag = f"{workdirs.PREFIX}{os.getpid()}-"
    while not any(n.startswith(tag) for n in os.listdir(root)):
        await asyncio.sleep(0.02)
    print("running", flush=True)
    await task

asyncio.run(main())
"""


def _holder(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "running\n"
    return proc


def _dirs_of(root: Path, pid: int) -> list[Path]:
    return [p for p in root.iterdir() if p.name.startswith(f"{workdirs.PREFIX}{pid}-")]


@pytest.mark.timeout(120)
def test_leftovers_of_a_killed_process_are_swept_and_live_ones_kept() -> None:
    root = Path(tempfile.mkdtemp(prefix="sbx-sweep-"))  # reachable by the sandbox uid
    root.chmod(0o755)
    dead, live = _holder(root), _holder(root)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
        time.sleep(0.2)
        assert _dirs_of(root, dead.pid), "the killed process left its work dir behind"
        assert _dirs_of(root, live.pid)
        unrelated = root / "someone-elses-dir"
        unrelated.mkdir()
        Sandbox(SandboxLimits(), work_root=root)  # the next run
        assert _dirs_of(root, dead.pid) == []
        assert _dirs_of(root, live.pid), "a live process's work dir was removed"
        assert unrelated.is_dir()
    finally:
        for proc in (dead, live):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def test_sweep_tells_a_reused_pid_from_its_owner(tmp_path: Path) -> None:
    me = os.getpid()
    ours = Path(workdirs.make(str(tmp_path)))
    reused = tmp_path / f"{workdirs.PREFIX}{me}-1-abc"  # our pid, another start time
    reused.mkdir()
    assert workdirs.sweep(str(tmp_path)) == [str(reused)]
    assert ours.is_dir() and not reused.exists()
