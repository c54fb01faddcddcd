"""Code that runs in the sandbox's own processes, before and around the untrusted program.

The parent never imports this module for these roles: it runs the file's source with
``python -I -S -c <source> ROLE ...`` (standard library only, fast start). Two roles:

``launch CONFIG_JSON`` is the first process of a run, started by the parent in a new session.
When the interpreter lives below a directory other users cannot enter (e.g. pyenv in ``/root``)
it first makes it reachable in a private mount namespace (a read-only tmpfs over the blocking
directory with only the interpreter's directories bound into it). It then drops privileges to
the sandbox uid/gid (when started as root), sets ``no_new_privs``, the parent-death signal and
the resource limits, and either execs bubblewrap (which runs the ``wait`` role as init of the
sandbox's pid namespace) or becomes the waiter itself.

``wait FD -- ARGV...`` forks and execs ARGV (the untrusted program) as a child subreaper, reaps
orphans while it runs and, when it ends or on SIGTERM, kills and reaps everything left of its
tree (under bubblewrap simply by exiting as pid 1).

Both report on the status fd FD, which the program itself never inherits (close-on-exec, and the
waiter makes itself non-dumpable so ``/proc/<waiter>/fd`` is closed to the program):
``E<message>\\n`` setup failed; ``S`` the program is about to start;
``R<raw wait status>\\n`` the program ended with that wait status.

It does NOT enforce the wall time, read output or remove files: the parent does, and it also
kills whatever the waiter could not (e.g. when the program killed the waiter).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


def _libc() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    return libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _fail(fd: int, message: str) -> None:
    try:
        os.write(fd, b"E" + message.replace("\n", " ").encode("utf-8", "replace")[:4000] + b"\n")
    finally:
        os._exit(126)


def _mount(
    libc: Any, src: str | None, dst: str, fstype: str | None, flags: int, data: str | None
) -> None:
    enc = [None if s is None else s.encode() for s in (src, dst, fstype, data)]
    _check(libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {src} on {dst}")


def _expose(libc: Any, hide: list[str], keep: list[str]) -> None:
    """Private mount namespace: read-only tmpfs over each ``hide`` dir, ``keep`` dirs bound in."""
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE, None)
    fds = [os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in keep]
    for d in hide:
        _mount(libc, "tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for path, fd in zip(keep, fds, strict=True):
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        _mount(libc, None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        os.close(fd)
    for d in hide:
        _mount(libc, None, d, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _set_rlimits(limits: list[list[int]]) -> None:
    import resource

    for res, soft, hard in limits:
        _, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            hard = cur_hard if hard == resource.RLIM_INFINITY else min(hard, cur_hard)
            soft = min(soft, hard) if soft != resource.RLIM_INFINITY else hard
        resource.setrlimit(res, (soft, hard))


class _Stop(Exception):
    """Raised by the SIGTERM handler: the parent says the time is up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Stop


def _descendants(me: int) -> set[int]:
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    parent[int(name)] = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: set[int] = set()
    frontier = {me}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def _kill_tree(me: int) -> None:
    tree = _descendants(me)
    for pid in tree:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:  # pinned by the pidfd: still in our tree, so not a reused pid?
            with open(f"/proc/{pid}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            if ppid == me or ppid in tree:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            pass
        finally:
            os.close(pidfd)


def _kill_and_reap_all(dedicated_uid: bool, timeout_s: float = 1.5) -> None:
    """SIGKILL and reap every descendant. With a uid of its own, ``kill(-1)`` hits every other
    process of the uid at once; otherwise the tree found through /proc is killed, repeatedly
    (a subreaper inherits every orphan, so nothing can leave the tree)."""
    import time

    deadline = time.monotonic() + timeout_s
    me = os.getpid()
    while time.monotonic() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            return
        if dedicated_uid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
        else:
            _kill_tree(me)
        time.sleep(0.001)


def wait(
    fd: int,
    argv: list[str],
    env: dict[str, str] | None,
    libc: Any = None,
    dedicated_uid: bool = False,
) -> None:
    """Run ``argv`` as a child, report ``S`` and ``R<status>`` on ``fd``, exit like the child.

    The waiter is a child subreaper (pid 1 of its namespace under bubblewrap): it reaps orphans
    while the program runs, and when the program ends (or on SIGTERM) it kills whatever is left
    of its tree (as pid 1, by exiting: the kernel then kills the namespace)."""
    if libc is None:
        libc = _libc()
    os.set_inheritable(fd, False)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    os.write(fd, b"S")
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if env is None:
                os.execv(argv[0], argv)
            os.execve(argv[0], argv, env)
        except BaseException as exc:
            _fail(fd, f"exec {argv[0]}: {exc!r}")
        os._exit(127)
    code = 128 + signal.SIGTERM
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        while True:
            got, status = os.waitpid(-1, 0)
            if got == pid:
                os.write(fd, b"R%d\n" % status)
                code = os.waitstatus_to_exitcode(status)
                code = code if code >= 0 else 128 - code
                break
    except (_Stop, ChildProcessError):
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.getpid() != 1:
        _kill_and_reap_all(dedicated_uid)
    os._exit(code)


def launch(config: dict[str, Any]) -> None:
    fd: int = config["status_fd"]
    try:
        libc = _libc()
        if config["hide"]:
            _expose(libc, config["hide"], config["keep"])
        uid, gid = config["uid"], config["gid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
                raise OSError("privilege drop did not take effect")
        _set_rlimits(config["rlimits"])
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        # Die with the parent; set after the uid change, which clears it.
        _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != config["parent_pid"]:
            raise OSError("parent exited during sandbox setup")
        os.chdir(config["cwd"])
    except BaseException as exc:
        _fail(fd, f"sandbox setup failed: {exc!r}")
    if config["exec"] is not None:
        try:
            os.execve(config["exec"][0], config["exec"], config["env"])
        except BaseException as exc:
            _fail(fd, f"exec {config['exec'][0]}: {exc!r}")
    wait(fd, config["program"], config["env"], libc, dedicated_uid=uid is not None)


def main(argv: list[str]) -> None:
    if argv[0] == "launch":
        launch(json.loads(argv[1]))
    elif argv[0] == "wait" and argv[2] == "--":
        wait(int(argv[1]), argv[3:], None)
    else:
        sys.exit(f"usage: launch CONFIG_JSON | wait FD -- ARGV...; got {argv[:3]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
