"""The host's handle on one warm runner: a bubblewrap jail whose init is ``_warm``.

``RunnerProcess.start`` leases a pool uid (``identity``), builds the jail (only the host view of
``fsview`` bound read-only, fresh ``/dev`` and ``/proc``, no network unless ``network=True``,
new pid/ipc/uts/cgroup namespaces, bubblewrap dropping every capability but the four the runner
needs) and starts it with one end of a SOCK_SEQPACKET socket pair. ``send_program`` hands it a
program as four file descriptors, ``send_kill`` asks it to kill the running one; ``close`` ends
the jail (EOF on the socket when idle, else SIGKILL to bubblewrap: the runner dies with it and,
as pid 1, takes every process of the jail along), checks that no process of the uid is left
and gives the uid back. It does NOT read replies or program output (``pool`` does) and keeps no
state about jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import _warm, fsview, identity, procs
from .bwrap import find_bwrap
from .launch import program_env
from .limits import SandboxError, SandboxLimits

WORKDIR = os.path.dirname(_warm.MAIN_PATH)  # the program's tmpfs
PRELOAD = ("json", "numbers", "math", "fractions", "decimal", "re", "random", "itertools",
           "functools", "collections", "traceback", "types", "atexit")  # fmt: skip
CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL")
_SOURCE = Path(_warm.__file__).read_text(encoding="utf-8")


def _program_sys_path() -> list[str]:
    """The interpreter's own ``sys.path`` entries (stdlib, site-packages): no project dirs."""
    bound = fsview.interpreter_dirs()
    real = [os.path.realpath(p) for p in sys.path if p]
    return [
        p for p in dict.fromkeys(real) if any(p == d or p.startswith(d + os.sep) for d in bound)
    ]


def runner_config(limits: SandboxLimits, uid: int, gid: int, sock_fd: int) -> dict[str, Any]:
    mem = limits.memory_mb * 2**20
    fsize = limits.max_file_mb * 2**20
    env = program_env(WORKDIR, None)
    return {
        "sock": sock_fd,
        "uid": uid,
        "gid": gid,
        "workdir": WORKDIR,
        "workdir_bytes": max(4 * limits.max_file_mb, 16) * 2**20,
        "wall_s": limits.wall_time_s,
        "rlimits": [
            [resource.RLIMIT_AS, mem, mem],
            [resource.RLIMIT_CPU, limits.cpu_time_s, limits.cpu_time_s + 1],
            [resource.RLIMIT_FSIZE, fsize, fsize],
            [resource.RLIMIT_CORE, 0, 0],
            [resource.RLIMIT_NOFILE, 64, 64],
            [resource.RLIMIT_NPROC, limits.max_processes, limits.max_processes],
        ],
        "env": env,
        "sys_path": _program_sys_path(),
        "preload": list(PRELOAD),
        "close_ipc": True,  # False: a fresh IPC namespace per program instead (``_warm``)
        "host_ipc_ns": os.stat("/proc/self/ns/ipc").st_ino,  # where the limits must stay
    }


def runner_argv(limits: SandboxLimits, uid: int, gid: int, sock_fd: int) -> list[str]:
    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxError("bubblewrap (bwrap) is not installed")
    argv = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not limits.network:
        argv.append("--unshare-net")
    argv += ["--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL"]
    for cap in CAPS:
        argv += ["--cap-add", cap]
    argv += fsview.bwrap_args(fsview.host_view())
    argv += ["--dev", "/dev", "--proc", "/proc", "--perms", "0755", "--dir", WORKDIR]
    argv += ["--remount-ro", "/", "--chdir", "/", "--clearenv", "--setenv", "LANG", "C.UTF-8"]
    config = json.dumps(runner_config(limits, uid, gid, sock_fd))
    return [*argv, "--", sys.executable, "-I", "-S", "-X", "utf8", "-c", _SOURCE, config]


class RunnerProcess:
    """One jail; ``sock`` is the host's end (non-blocking)."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.ident = identity.acquire_identity()
        host_end, jail_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = runner_argv(limits, self.ident.uid, self.ident.gid, jail_end.fileno())
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, pass_fds=(jail_end.fileno(),),
            )  # fmt: skip
        except BaseException:
            host_end.close()
            self.ident.release()
            raise
        finally:
            jail_end.close()
        host_end.setblocking(False)
        self.sock = host_end
        self.ready = False
        self.error: str | None = None  # what the runner said when its setup failed
        self.job: Any = None

    def send_program(self, fds: list[int]) -> None:
        socket.send_fds(self.sock, [b"R"], fds)

    def send_kill(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(b"K")

    def close(self, timeout_s: float = 2.0) -> None:
        """End the jail: politely when idle (the runner exits on EOF), else by SIGKILL; then
        make sure no process of its uid is left and give the uid back."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        try:
            self.proc.wait(timeout_s if self.job is None else 0)
            clean = True
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)  # the runner dies with bubblewrap
            self.proc.wait()
            # bubblewrap is gone, the runner and the program maybe not quite yet
            clean = procs.kill_matching(procs.uid_matcher(self.ident.uid))
        self.sock.close()
        self.ident.release(clean=clean)
