"""The ``mathsynth`` command as a user runs it, for tests: ``python -m orchestrator`` in a
subprocess (real Ray, never a RAY_ADDRESS of the caller), output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def environment(pythonpath: list[Path] | None = None) -> dict[str, str]:
    """This environment for a child process, with ``pythonpath`` before the repository."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    paths = [str(p) for p in pythonpath or []] + [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def cli(*args: str, pythonpath: list[Path] | None = None, cwd: Path = ROOT,
        **kwargs) -> subprocess.Popen[str]:  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=environment(pythonpath),
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs,
    )  # fmt: skip


def run_cli(*args: str, timeout: float = 180, **kwargs) -> tuple[int, str]:
    proc = cli(*args, **kwargs)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out
