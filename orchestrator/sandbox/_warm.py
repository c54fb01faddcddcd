"""The warm runner: init of one bubblewrap jail, it runs programs one at a time, each in a fork.

The parent never imports this module for this role: ``warm_runner`` starts it as bubblewrap's
command, ``python -I -S -X utf8 -c <this source> CONFIG_JSON`` (standard library only), as root
in new pid/mount/ipc/uts/cgroup (and network) namespaces with only CAP_SYS_ADMIN, CAP_SETUID,
CAP_SETGID and CAP_KILL. It sets the programs' environment and ``sys.path``, imports the
modules programs commonly need, makes itself non-dumpable (its ``/proc`` entries are closed to
programs), sets the jail's IPC limits to zero (``close_ipc``: no program can create a System V
segment, queue or semaphore set or a POSIX message queue, so none can be left for the next; where
the limits cannot be set, each program gets a fresh IPC namespace instead), freezes its objects
for the garbage collector and waits on its socket (a
SOCK_SEQPACKET, one message per send). For each ``R`` message, which carries four file
descriptors (a memfd with the program, stdin, stdout, stderr) and never any program text:

1. fork. The child reads the memfd (the source and its code object, see
   ``pool_job.program_image``; the runner never reads it), makes a new session (and a fresh IPC
   namespace when ``close_ipc`` could not set the limits),
   moves the descriptors to 0-2 and closes every other one, drops to the jail's unprivileged
   uid/gid with no groups (which clears the permitted, effective and ambient capabilities; the
   runner emptied the inheritable set at start), changes to the work dir (a tmpfs of
   its own, mode 0700), sets the parent-death signal and the resource limits and runs the
   program as ``__main__`` in a fresh module, like ``python main.py`` (exit status, traceback
   on stderr with the source lines, ``atexit``, non-daemon threads awaited);
2. wait for the child, at most the wall time (a ``K`` message kills it at once);
3. SIGKILL every other process of the jail (as pid 1, ``kill(-1)`` reaches exactly the
   program's leftovers: daemons, detached grandchildren) and reap them all, so nothing of the
   program is left when the next one starts; then replace the work dir by an empty tmpfs;
4. reply ``D`` + JSON ``{"status": raw wait status or null, "timed_out", "cancelled",
   "started", "error", "duration_s"}``.

Other replies: ``READY`` once set up, ``E<message>`` when setup failed. An empty read (the
parent closed its end) ends the runner, and with it (pid 1) the whole jail. It does NOT read
program output (the parent holds the read ends of the pipes), enforce output caps, or decide
what a result means.
"""

from __future__ import annotations

import gc
import json
import marshal
import os
import resource
import select
import signal
import socket
import sys
import time
from os import _exit as _hard_exit  # the program may replace os._exit
from typing import Any

MAIN_PATH = "/tmp/main.py"  # the program's file name (in the work dir; no file is written)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
CLONE_NEWIPC = 0x08000000
MNT_DETACH = 2
MS_NOSUID = 2
MS_NODEV = 4
# the jail's IPC namespace (bubblewrap's --unshare-ipc: these files are per IPC namespace)
IPC_LIMITS = (
    "/proc/sys/kernel/shmmni",
    "/proc/sys/kernel/msgmni",
    "/proc/sys/fs/mqueue/queues_max",
)
SEM_LIMITS = "/proc/sys/kernel/sem"  # SEMMSL SEMMNS SEMOPM SEMMNI: SEMMNI (sets) goes to 0


def _libc() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    libc.unshare.argtypes = [ctypes.c_int]
    return libc


def _clear_inheritable(libc: Any) -> None:
    """Empty this process's inheritable capability set (bubblewrap fills it with the added
    capabilities); permitted and effective stay. Children that change uid lose the rest."""
    import ctypes

    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # 2 x {effective, permitted, inheritable}
    _check(libc.capget(header, data), "capget")
    data[2] = data[5] = 0
    _check(libc.capset(header, data), "capset")


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class Runner:
    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = config
        self.sock = socket.socket(fileno=config["sock"])
        self.libc = _libc()
        self.workdir: str = config["workdir"]
        self.null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.ipc_per_program = True  # until ``close_ipc`` succeeds

    def setup(self) -> None:
        _check(self.libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(DUMPABLE)")
        _clear_inheritable(self.libc)
        sys.path[:] = self.cfg["sys_path"]
        os.environ.clear()  # what programs get (they inherit it)
        os.environ.update(self.cfg["env"])
        for name in self.cfg["preload"]:
            try:  # noqa: SIM105 (contextlib is not worth importing into every program)
                __import__(name)
            except ImportError:
                pass
        compile("x = 1", "warmup", "exec")
        self.ipc_per_program = not (self.cfg["close_ipc"] and self.close_ipc())
        self.fresh_workdir(first=True)
        gc.collect()
        gc.freeze()  # forked children do not touch the runner's objects when they collect

    def close_ipc(self) -> bool:
        """Set the jail's IPC limits to zero (module doc); True when they read back as zero.
        Programs lack CAP_SYS_RESOURCE and CAP_IPC_OWNER, so the limits hold for them. Never
        in the host's IPC namespace (the config names it): False there, nothing written."""
        try:
            if os.stat("/proc/self/ns/ipc").st_ino == self.cfg["host_ipc_ns"]:
                return False
            with open(SEM_LIMITS) as fh:
                sem = fh.read().split()
            sem[3] = "0"
            for path, value in (*((p, "0") for p in IPC_LIMITS), (SEM_LIMITS, " ".join(sem))):
                with open(path, "w") as fh:
                    fh.write(value)
            for path in IPC_LIMITS:
                with open(path) as fh:
                    if fh.read().strip() != "0":
                        return False
            with open(SEM_LIMITS) as fh:
                return fh.read().split()[3] == "0"
        except (OSError, IndexError):
            return False

    def fresh_workdir(self, first: bool = False) -> None:
        path = self.workdir.encode()
        if not first:
            _check(self.libc.umount2(path, MNT_DETACH), "umount work dir")
        uid, gid, size = self.cfg["uid"], self.cfg["gid"], self.cfg["workdir_bytes"]
        opts = f"size={size},mode=0700,uid={uid},gid={gid}".encode()
        flags = MS_NOSUID | MS_NODEV
        _check(self.libc.mount(b"tmpfs", path, b"tmpfs", flags, opts), "mount tmpfs")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def serve(self) -> None:
        while True:
            msg, fds, _, _ = socket.recv_fds(self.sock, 64, 4)
            if not msg:
                return
            if msg == b"R" and len(fds) == 4:
                report = self.run(fds)
                self.send(b"D" + json.dumps(report).encode())
            else:
                for fd in fds:
                    os.close(fd)

    def run(self, fds: list[int]) -> dict[str, Any]:
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        started_at = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(status_r)
            _child(self, fds, status_w)
        os.close(status_w)
        for fd in fds:
            os.close(fd)
        status, timed_out, cancelled = self.wait(pid, started_at + self.cfg["wall_s"])
        duration = time.monotonic() - started_at
        self.kill_all()
        report = os.read(status_r, 65536)
        os.close(status_r)
        self.fresh_workdir()
        error = report[1:].decode("utf-8", "replace") if report.startswith(b"E") else None
        return {
            "status": status, "timed_out": timed_out, "cancelled": cancelled,
            "started": report.startswith(b"S"), "error": error, "duration_s": duration,
        }  # fmt: skip

    def wait(self, pid: int, deadline: float) -> tuple[int | None, bool, bool]:
        """``(raw wait status or None, timed out, cancelled)``."""
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(self.sock, select.POLLIN)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, True, False
                for fd, _ in poller.poll(left * 1000):
                    if fd == pidfd:
                        return os.waitpid(pid, 0)[1], False, False
                    msg = self.sock.recv(64)  # "K" (kill) or "" (parent gone)
                    if msg == b"K" or not msg:
                        return None, False, True
        finally:
            os.close(pidfd)

    def kill_all(self) -> None:
        """SIGKILL and reap every process of the jail but this one (pid 1)."""
        while True:
            try:  # noqa: SIM105
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return


def _child(runner: Runner, fds: list[int], status_w: int) -> None:
    """The program's process: set up, report ``S`` (or ``E<why>``), run it, exit."""
    cfg = runner.cfg
    status_fd = status_w
    try:
        code_fd, stdin_fd, out_fd, err_fd = fds
        image = b""
        while chunk := os.pread(code_fd, 1 << 20, len(image)):
            image += chunk
        os.setsid()
        if runner.ipc_per_program:
            _check(runner.libc.unshare(CLONE_NEWIPC), "unshare(CLONE_NEWIPC)")
        for target, fd in ((0, stdin_fd), (1, out_fd), (2, err_fd)):
            os.dup2(fd, target)
        os.dup2(status_w, 3)
        status_fd = 3
        os.closerange(4, 1 << 16)
        os.set_inheritable(3, False)
        os.setgroups([])
        os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
        os.chdir(runner.workdir)  # mode 0700, the program's uid: root has no DAC override
        # after the uid change, which clears the first and sets the second to 0; dumpable as
        # any process is (its own /proc files are its uid's), the runner stays non-dumpable
        runner.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        runner.libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        if os.getppid() != 1:
            raise OSError("the runner exited during setup")
        for res, soft, hard in cfg["rlimits"]:
            resource.setrlimit(res, (soft, hard))
        size = int.from_bytes(image[:8], "little")
        source = image[8 : 8 + size].decode("utf-8")
        compiled = marshal.loads(image[8 + size :]) if len(image) > 8 + size else None
        del image
    except BaseException as exc:
        os.write(status_fd, b"E" + repr(exc).encode()[:4000])
        _hard_exit(126)
    os.write(3, b"S")
    os.close(3)
    del runner, cfg, fds
    _hard_exit(_run_main(source, compiled))


def _run_main(source: str, compiled: Any) -> int:
    """Run the program as ``__main__`` like the interpreter runs a script (``compiled``: its
    code object, or None to compile ``source`` here); returns the exit code."""
    import builtins
    import types

    module = types.ModuleType("__main__")
    module.__dict__.update({"__file__": MAIN_PATH, "__builtins__": builtins, "__cached__": None})
    sys.modules["__main__"] = module
    sys.argv[:] = ["main.py"]
    status = 0
    try:
        exec(compiled or compile(source, MAIN_PATH, "exec"), module.__dict__)
    except SystemExit as exc:
        status = _exit_status(exc)
    except BaseException:
        kind, exc, tb = sys.exc_info()
        import linecache
        import traceback

        # the source lines of the traceback (and of inspect) come from here, not from a file
        linecache.cache[MAIN_PATH] = (len(source), None, source.splitlines(True), MAIN_PATH)
        traceback.print_exception(kind, exc, tb.tb_next if tb is not None else None)
        status = 1
    return _finish(status)


def _exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _finish(status: int) -> int:
    """What the interpreter does at exit: wait for threads, run atexit, flush stdio."""
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()  # type: ignore[attr-defined]
        import atexit

        atexit._run_exitfuncs()
    except SystemExit as exc:
        status = _exit_status(exc)
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            status = status or 120
    return status


def main(argv: list[str]) -> None:
    runner = Runner(json.loads(argv[0]))
    try:
        runner.setup()
    except BaseException as exc:
        runner.send(b"E" + repr(exc).encode()[:4000])
        raise SystemExit(1) from exc
    runner.send(b"READY")
    runner.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
