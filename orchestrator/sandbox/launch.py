"""What the launcher (``_child.py``) is told for one run, and what it reports back.

``launcher_argv`` builds the ``python -I -S -c <_child source> launch CONFIG`` command: uid/gid,
resource limits, the program's minimal environment, the interpreter exposure plan and, under
bubblewrap, the full ``bwrap`` command line whose command is the waiter. ``parse_status`` reads
the status pipe protocol. It does NOT start, watch or kill anything (``execution`` does).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

from . import _child, fsview, identity, procs
from .bwrap import bwrap_argv, find_bwrap
from .limits import SandboxError, SandboxLimits

MODE_BWRAP = "bwrap"
MODE_DIRECT = "direct"
MARKER_VAR = "MATHSYNTH_SANDBOX_RUN"
LAUNCHER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
_CHILD_SOURCE = Path(_child.__file__).read_text(encoding="utf-8")
_HELPER_TASKS = {MODE_BWRAP: 2, MODE_DIRECT: 1}  # bwrap + waiter | waiter
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_exposure: tuple[list[str], list[str]] | None = None


def exposure_plan() -> tuple[list[str], list[str]]:
    """``(hide, keep)`` for the launcher (see ``identity.exposure_plan``), computed once."""
    global _exposure
    if _exposure is None:
        _exposure = identity.exposure_plan(fsview.interpreter_dirs())
    return _exposure


def _rlimits(limits: SandboxLimits, mode: str, ident: identity.Identity | None) -> list[list[int]]:
    mem = limits.memory_mb * 2**20
    fsize = limits.max_file_mb * 2**20
    nproc = limits.max_processes + _HELPER_TASKS[mode]
    if ident is None:  # RLIMIT_NPROC counts every task of the uid, ours included
        nproc += procs.count_tasks(os.getuid())
    return [
        [resource.RLIMIT_AS, mem, mem],
        [resource.RLIMIT_CPU, limits.cpu_time_s, limits.cpu_time_s + 1],
        [resource.RLIMIT_FSIZE, fsize, fsize],
        [resource.RLIMIT_CORE, 0, 0],
        [resource.RLIMIT_NOFILE, 64, 64],
        [resource.RLIMIT_NPROC, nproc, nproc],
    ]


def parse_status(data: bytes) -> tuple[bool, int | None, str | None]:
    """``(started, wait_status, setup_error)`` from the status pipe (see ``_child``)."""
    started, wait_status, error = False, None, None
    i = 0
    while i < len(data):
        tag = data[i : i + 1]
        if tag == b"S":
            started, i = True, i + 1
            continue
        if tag not in (b"E", b"R"):
            break
        end = data.find(b"\n", i)
        end = len(data) if end < 0 else end
        body, i = data[i + 1 : end], end + 1
        if tag == b"E":
            error = body.decode("utf-8", "replace")
        elif body.isdigit():
            wait_status = int(body)
    return started, wait_status, error


def program_env(workdir: str, marker: str | None) -> dict[str, str]:
    """The program's whole environment; ``marker`` (``KEY=VALUE``) finds its processes later."""
    env = {"PATH": LAUNCHER_ENV["PATH"], "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if marker is not None:
        key, _, value = marker.partition("=")
        env[key] = value
    env |= {var: "1" for var in _THREAD_VARS}  # threads count towards RLIMIT_NPROC
    return env


def launcher_argv(
    limits: SandboxLimits,
    mode: str,
    *,
    workdir: str,
    ident: identity.Identity | None,
    status_fd: int,
    marker: str,
    hide: list[str],
    keep: list[str],
) -> list[str]:
    env = program_env(workdir, marker)
    program = [sys.executable, "-I", "-B", "main.py"]
    exec_argv = None
    if mode == MODE_BWRAP:
        bwrap = find_bwrap()
        if bwrap is None:
            raise SandboxError("bubblewrap (bwrap) is not installed")
        waiter = [sys.executable, "-I", "-S", "-c", _CHILD_SOURCE, "wait", str(status_fd)]
        exec_argv = bwrap_argv(
            bwrap,
            workdir=workdir,
            env=env,
            network=limits.network,
            tmp_size_bytes=max(4 * limits.max_file_mb, 16) * 2**20,
            command=[*waiter, "--", *program],
        )
    config: dict[str, Any] = {
        "status_fd": status_fd,
        "parent_pid": os.getpid(),
        "hide": hide,
        "keep": keep,
        "uid": None if ident is None else ident.uid,
        "gid": None if ident is None else ident.gid,
        "rlimits": _rlimits(limits, mode, ident),
        "cwd": workdir,
        "exec": exec_argv,
        "program": program,
        "env": env,
    }
    return [sys.executable, "-I", "-S", "-c", _CHILD_SOURCE, "launch", json.dumps(config)]
