"""Teachers that misbehave like real LLMs and real servers, wrapped around a scripted reply.

``repeating`` repeats every complete problem of a TinyGSM one-step reply (sampling models do
that often at temperature 0.7). ``chaotic`` answers a share of requests with 429s, 5xx errors,
dropped connections and malformed JSON, chosen by a seeded RNG from the request's content and
its attempt number, so a run is reproducible and every retry has a fresh chance. Test support
only: the product never depends on these.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.support.scripted_server import Fault
from tests.support.tinygsm_teacher import END_OF_PROGRAM

Reply = Callable[[dict[str, Any], int], "str | Fault"]


def repeating(reply: Reply, copies: int = 2) -> Reply:
    """Every complete problem block (ending with the end-of-program marker) ``copies`` times."""

    def wrapped(request: dict[str, Any], index: int) -> str | Fault:
        text = reply(request, index)
        if isinstance(text, Fault) or END_OF_PROGRAM not in text:
            return text
        *blocks, tail = text.split(END_OF_PROGRAM)
        return "".join((block + END_OF_PROGRAM) * copies for block in blocks) + tail

    return wrapped


def chaotic(
    reply: Reply,
    *,
    seed: int = 0,
    p429: float = 0.3,
    p5xx: float = 0.1,
    pdrop: float = 0.05,
    pmalformed: float = 0.05,
) -> Reply:
    """``reply`` with faults injected per attempt (see the module docstring)."""
    attempts: Counter[str] = Counter()

    def wrapped(request: dict[str, Any], index: int) -> str | Fault:
        key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        attempts[key] += 1
        draw = random.Random(f"{seed}:{key}:{attempts[key]}").random()
        for p, fault in (
            (p429, Fault(status=429, retry_after=0.01)),
            (p5xx, Fault(status=503)),
            (pdrop, Fault(kind="drop")),
            (pmalformed, Fault(kind="malformed")),
        ):
            if draw < p:
                return fault
            draw -= p
        return reply(request, index)

    return wrapped
