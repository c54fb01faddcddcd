"""The bubblewrap command line for one sandboxed run.

Inside: new user, pid, network (unless ``network=True``), ipc, uts and cgroup namespaces; the
host filesystem read-only; fresh ``/dev``, ``/proc``, a size-limited ``/tmp`` and an empty
read-only ``/run`` (host sockets hidden); the run's work dir bound read-write as the current
directory; a cleared environment. ``--as-pid-1``: the command (the sandbox's waiter) is the pid
namespace's init, so when it exits the kernel kills and reaps every other process of the run
(bubblewrap's own reaper would be left as a zombie for the host's init to collect);
``--die-with-parent`` kills it if bubblewrap or its parent dies. It does NOT set resource limits
or drop privileges (the launcher does, before exec'ing bubblewrap) and does NOT check that
bubblewrap works.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

DEFAULT_BWRAP = "/usr/bin/bwrap"


def find_bwrap() -> str | None:
    found = shutil.which("bwrap")
    if found:
        return found
    return DEFAULT_BWRAP if os.access(DEFAULT_BWRAP, os.X_OK) else None


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def bwrap_argv(
    bwrap: str,
    *,
    workdir: str,
    env: Mapping[str, str],
    network: bool,
    tmp_size_bytes: int,
    ro_paths: Sequence[str],
    command: Sequence[str],
) -> list[str]:
    """``ro_paths``: host dirs that must stay visible (the interpreter's) even if they lie
    below ``/tmp`` or ``/run``, which are replaced by fresh tmpfs mounts."""
    argv = [bwrap, "--unshare-all"]
    if network:
        argv.append("--share-net")
    argv += ["--die-with-parent", "--new-session", "--as-pid-1"]
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--size", str(tmp_size_bytes), "--tmpfs", "/tmp", "--tmpfs", "/run"]
    for path in ro_paths:
        if _under(path, "/tmp") or _under(path, "/run"):
            argv += ["--ro-bind", path, path]
    argv += ["--bind", workdir, workdir, "--remount-ro", "/run", "--chdir", workdir, "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--", *command]
    return argv
