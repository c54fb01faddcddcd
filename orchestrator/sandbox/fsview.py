"""What of the host filesystem a sandboxed program sees: the interpreter, nothing else.

Under bubblewrap the sandbox's root is an empty tmpfs. ``host_view()`` lists what is bound into
it, read-only: the interpreter's prefixes (``sys.prefix``, ``sys.base_prefix`` and the exec
prefixes: the standard library, ``lib-dynload``, the venv's site-packages) and the shared
libraries that the interpreter binary and the standard library's extension modules link
against (found with ``ldd``), plus the symlinks needed for those paths to resolve as they do on
the host (e.g. ``/lib -> usr/lib``); on a machine without ``ldd``, the system library
directories whole. ``/etc``, home directories, the project, ``/tmp``,
``/run``, ``/var`` and every other host path are absent.

``bwrap_args`` turns a view into bubblewrap arguments (parent directories are created mode
0755 so an unprivileged uid can reach what is bound below a private directory such as
``/root``). This module does NOT mount anything itself, and does not follow what a program
imports at run time: an extension module in site-packages that needs a system library outside
the list above fails to load inside the sandbox.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

_LDD_TIMEOUT_S = 30.0
SYSTEM_LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")


@dataclass(frozen=True)
class HostView:
    dirs: tuple[str, ...]  # real directories bound read-only (no symlink in their paths)
    files: tuple[str, ...]  # real files bound read-only
    symlinks: tuple[tuple[str, str], ...] = field(default=())  # (path, target) recreated

    def paths(self) -> list[str]:
        return [*self.dirs, *self.files]


def interpreter_dirs() -> list[str]:
    """The interpreter's prefixes and the directory of its binary, real paths, outermost only."""
    dirs = {
        os.path.realpath(p)
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    }
    dirs.add(os.path.dirname(os.path.realpath(sys.executable)))
    ordered = sorted(dirs)
    return [d for d in ordered if not any(d != o and d.startswith(o + os.sep) for o in ordered)]


def _resolve(path: str, links: dict[str, str]) -> str:
    """The real path of ``path``, recording every symlink met on the way in ``links``."""
    pending = [p for p in os.path.abspath(path).split(os.sep) if p]
    current = os.sep
    hops = 0
    while pending:
        part = pending.pop(0)
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks resolving {path}")
            target = os.readlink(candidate)
            links[candidate] = target
            base = target if os.path.isabs(target) else os.path.join(current, target)
            pending = [p for p in os.path.normpath(base).split(os.sep) if p] + pending
            current = os.sep
        else:
            current = candidate
    return current


def _linked_libraries(binaries: list[str]) -> list[str]:
    """Paths of the shared libraries ``binaries`` need (``ldd``), the loader included."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    proc = subprocess.run(
        [ldd, *binaries], capture_output=True, text=True, timeout=_LDD_TIMEOUT_S, check=False
    )
    found = []
    for line in proc.stdout.splitlines():
        words = line.split()
        if "=>" in words and words.index("=>") + 1 < len(words):
            candidate = words[words.index("=>") + 1]
        elif words and words[0].startswith("/"):
            candidate = words[0]  # the loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
        else:
            continue
        if candidate.startswith("/") and os.path.exists(candidate):
            found.append(candidate)
    return sorted(set(found))


def _extension_modules(prefix_dirs: list[str]) -> list[str]:
    base = os.path.realpath(sys.base_prefix)
    dynload = [p for p in sys.path if os.path.basename(p) == "lib-dynload"]
    dynload = [os.path.realpath(p) for p in dynload if os.path.realpath(p).startswith(base)]
    out = []
    for d in dynload:
        out += [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".so")]
    return out


@functools.cache
def host_view() -> HostView:
    """Computed once per process (one ``ldd`` run). Without ``ldd`` the system library
    directories are bound whole instead (``SYSTEM_LIB_DIRS``)."""
    dirs = interpreter_dirs()
    links: dict[str, str] = {}
    binary = _resolve(sys.executable, links)
    if shutil.which("ldd") is None:
        system = {_resolve(d, links) for d in SYSTEM_LIB_DIRS if os.path.isdir(d)}
        dirs = sorted(set(dirs) | system)
        dirs = [d for d in dirs if not any(d != o and d.startswith(o + os.sep) for o in dirs)]
        libs: list[str] = []
    else:
        libs = _linked_libraries([binary, *_extension_modules(dirs)])
    files = set()
    for lib in libs:
        real = _resolve(lib, links)
        if not any(real.startswith(d + os.sep) for d in dirs):
            files.add(real)
    # Links inside a bound directory come with it; only the ones outside need recreating.
    outside = {p: t for p, t in links.items() if not any(p.startswith(d + os.sep) for d in dirs)}
    return HostView(tuple(dirs), tuple(sorted(files)), tuple(sorted(outside.items())))


def _parents(path: str) -> list[str]:
    parts = [p for p in path.split(os.sep) if p][:-1]
    return [os.sep + os.sep.join(parts[: i + 1]) for i in range(len(parts))]


def bwrap_args(view: HostView) -> list[str]:
    """``--symlink``/``--dir``/``--ro-bind`` arguments that recreate ``view`` in a new root."""
    args: list[str] = []
    made: set[str] = set()
    links = dict(view.symlinks)

    def make_parents(path: str) -> None:
        for parent in _parents(path):
            if parent in made or parent in links:
                continue
            made.add(parent)
            args.extend(["--perms", "0755", "--dir", parent])

    for path, target in sorted(links.items(), key=lambda kv: kv[0].count(os.sep)):
        make_parents(path)
        args.extend(["--symlink", target, path])
    for path in view.dirs:
        make_parents(path)
        args.extend(["--ro-bind", path, path])
    for path in view.files:
        make_parents(path)
        args.extend(["--ro-bind", path, path])
    return args
