"""What of Ray's own output reaches someone running mathsynth, and how.

- ``plain_streams()``: when stdout or stderr is not a terminal (CI, ``ray job logs``, a file),
  Ray must not colour what it prints there. Ray 2.x wraps the ``(Actor pid=...)`` prefix of
  every worker log line it forwards in ANSI colours unless ``RAY_COLOR_PREFIX=0`` (read per
  line, so setting it before Ray prints is enough), and always colours its
  ``[repeated Nx across cluster]`` note; so the non-terminal stream is also wrapped in
  ``AnsiStripped``, which drops ANSI escape sequences from whatever is written through it.
- ``quiet_private_start()``: around ``ray.init`` of the private loopback Ray a run starts for
  itself, silences the two start-up warnings that say nothing a user can act on there:
  ``Token authentication is enabled (or disabled) for this Ray cluster`` (logger
  ``ray._private.authentication.authentication_token_setup``; the cluster is mathsynth's own,
  on 127.0.0.1, gone when the run ends), and ``Using blocking ray.get inside async actor``
  (each generation worker looks up the job's actors once while it is constructed, which is
  meant to block; ``RAY_WARN_BLOCKING_GET_INSIDE_ASYNC=0``, inherited by the local workers).
  Every other Ray warning still shows, and nothing is silenced on a cluster mathsynth joins.

``strip_ansi`` is also what ``mathsynth watch`` applies to a job's log lines it re-prints.
This module prints nothing itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# ECMA-48 control sequences (CSI: colours, cursor moves) and operating system commands (OSC)
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"
BLOCKING_GET_ENV = "RAY_WARN_BLOCKING_GET_INSIDE_ASYNC"


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text) if "\x1b" in text else text


class AnsiStripped:
    """A text stream that writes through to ``stream`` without ANSI escape sequences."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(strip_ansi(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self.stream, name)


def plain_streams() -> None:
    """No ANSI colours from Ray (or anything else) on a stdout/stderr that is not a terminal."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, AnsiStripped) or _is_terminal(stream):
            continue
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        setattr(sys, name, AnsiStripped(stream))


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


@contextlib.contextmanager
def quiet_private_start() -> Iterator[None]:
    """Around ``ray.init`` of a private local Ray (module doc: which warnings, and why)."""
    ours = BLOCKING_GET_ENV not in os.environ  # (a user's own setting is left alone)
    if ours:  # the raylet started now inherits it, and passes it to the workers it starts
        os.environ[BLOCKING_GET_ENV] = "0"
    logger = logging.getLogger(TOKEN_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
        if ours:
            os.environ.pop(BLOCKING_GET_ENV, None)
