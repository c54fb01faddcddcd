"""The bubblewrap command line for one sandboxed run (the one-sandbox-per-run mode).

Inside: new user, pid, network (unless ``network=True``), ipc, uts and cgroup namespaces; an
empty read-only root holding only the host view of ``fsview`` (the interpreter and its
libraries, read-only), fresh ``/dev`` and ``/proc``, a size-limited ``/tmp``, and the run's work dir bound
read-write as the current directory; a cleared environment. ``--as-pid-1``: the command (the
sandbox's waiter) is the pid namespace's init, so when it exits the kernel kills and reaps
every other process of the run (bubblewrap's own reaper would be left as a zombie for the
host's init to collect); ``--die-with-parent`` kills it if bubblewrap or its parent dies. It
does NOT set resource limits or drop privileges (the launcher does, before exec'ing
bubblewrap) and does NOT check that bubblewrap works.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

from . import fsview

DEFAULT_BWRAP = "/usr/bin/bwrap"


def find_bwrap() -> str | None:
    found = shutil.which("bwrap")
    if found:
        return found
    return DEFAULT_BWRAP if os.access(DEFAULT_BWRAP, os.X_OK) else None


def bwrap_argv(
    bwrap: str,
    *,
    workdir: str,
    env: Mapping[str, str],
    network: bool,
    tmp_size_bytes: int,
    command: Sequence[str],
) -> list[str]:
    argv = [bwrap, "--unshare-all"]
    if network:
        argv.append("--share-net")
    argv += ["--die-with-parent", "--new-session", "--as-pid-1"]
    argv += ["--dev", "/dev", "--proc", "/proc", "--size", str(tmp_size_bytes), "--tmpfs", "/tmp"]
    argv += fsview.bwrap_args(fsview.host_view())  # after /tmp: a venv may live below it
    argv += ["--bind", workdir, workdir, "--remount-ro", "/", "--chdir", workdir, "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--", *command]
    return argv
