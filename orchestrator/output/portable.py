"""Keep what is published free of local paths and secrets.

``portable(value)`` rewrites a configuration (nested dicts/lists of plain values) for a reader
elsewhere: a local path becomes its file name, a URL loses its credentials and query. ``leaks``
lists the local paths and secret-looking strings in a value (an error message in
``summary.json``, a ``source`` cell): ``mathsynth push`` refuses or leaves out what has any.
Secrets are recognised by common token shapes (``sk-...``, ``hf_...``) and by the values of this
process's environment variables whose names say key, token, secret or password. This module does
no I/O beyond reading the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# an absolute path (or ~/...) at the start of a string or after a space, quote or bracket
_PATH_IN_TEXT = re.compile(r"""(?:^|(?<=[\s'"(\[=,]))(?:~?/|[A-Za-z]:\\)[\w.\-~]+[/\\][^\s'"]*""")
_TOKEN = re.compile(r"\b(?:sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,})")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


def is_local_path(text: str) -> bool:
    """Whether ``text`` is a path on some machine: ``file://``, ``~``, ``..``, or absolute with
    two parts or more (``/health`` alone is taken for a URL path, unless it exists here)."""
    if "://" in text:
        return text.startswith("file://")
    posix = PurePosixPath(text)
    if text.startswith("~") or ".." in posix.parts or PureWindowsPath(text).is_absolute():
        return True
    return posix.is_absolute() and (len(posix.parts) > 2 or Path(text).exists())


def _portable_str(text: str) -> str:
    if is_local_path(text):
        return PurePosixPath(text.removeprefix("file://").rstrip("/")).name or text
    if "://" in text:
        parts = urlsplit(text)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return text


def portable(value: Any) -> Any:
    """``value`` with every local path replaced by its name and URLs stripped of credentials."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    return _portable_str(value) if isinstance(value, str) else value


def _secret_values() -> list[str]:
    return [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8]


def leaks(value: Any) -> list[str]:
    """Local paths and secrets found in the strings of ``value`` (nested), each once."""
    found: list[str] = []
    secrets = _secret_values()

    def visit(item: Any) -> None:
        if isinstance(item, dict):
            for k, v in item.items():
                visit(k)
                visit(v)
        elif isinstance(item, list | tuple):
            for v in item:
                visit(v)
        elif isinstance(item, str):
            found.extend(_PATH_IN_TEXT.findall(item) + _TOKEN.findall(item))
            found.extend("a secret from the environment" for s in secrets if s in item)

    visit(value)
    return list(dict.fromkeys(found))
