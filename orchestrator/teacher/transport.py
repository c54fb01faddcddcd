"""Why a request never got an HTTP answer: the transport cause of a teacher failure.

``transport_cause(exc)`` walks the exception chain (``__cause__`` / ``__context__``, and
aiohttp's ``os_error``) of an ``openai.APIConnectionError`` and names the first cause it
recognises, by exception type only (never by message text):

``connection_refused``  nothing listens at the host and port (``ConnectionRefusedError``)
``name_not_resolved``   the host name does not resolve (``socket.gaierror``)
``tls_error``           the TLS handshake failed (``ssl.SSLError``)
``connection_dropped``  the server closed or reset the connection without an answer
``timeout``             no answer in time (connect or read timeout)
``invalid_url``         the base URL is not an http(s) URL the client can use
``unreachable``         another OS-level network error (no route to host, ...)
``connection_error``    none of the above

The chain matters because the SDK's aiohttp transport reports a refused connection as a
``ConnectTimeout`` (it maps aiohttp's ``ClientConnectionError`` before its subclass
``ClientConnectorError``): only the ``ConnectionRefusedError`` under it tells the truth.
``describe_cause`` gives the human phrase used in error messages.

What it does NOT do: decide what is retried (``retries.py``) or build errors (``failures.py``).
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import ssl
from collections.abc import Iterator

__all__ = ["CAUSES", "describe_cause", "transport_cause"]

CAUSES = {
    "connection_refused": "connection refused (nothing listens there: is the server running?)",
    "name_not_resolved": "the host name does not resolve",
    "tls_error": "the TLS handshake failed",
    "connection_dropped": "the server closed the connection without answering",
    "timeout": "no answer in time (timeout)",
    "invalid_url": "the base URL is not a usable http(s) URL",
    "unreachable": "the host is unreachable",
    "connection_error": "the connection failed",
}


def _chain(exc: BaseException, limit: int = 12) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < limit:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (current.__cause__, current.__context__, getattr(current, "os_error", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _types(*names: str) -> tuple[type[BaseException], ...]:
    """The exception classes named ``module.Class`` that this install has (the SDK runs over
    httpx2 or httpx, with or without aiohttp)."""
    found: list[type[BaseException]] = []
    for name in names:
        module, _, attr = name.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_DROPPED = (ConnectionResetError, ConnectionAbortedError) + _types(
    "aiohttp.ServerDisconnectedError", "aiohttp.ClientPayloadError",
    "httpx2.RemoteProtocolError", "httpx2.ReadError", "httpx.RemoteProtocolError", "httpx.ReadError",
)  # fmt: skip
_INVALID_URL = _types(
    "aiohttp.InvalidURL", "httpx2.UnsupportedProtocol", "httpx2.InvalidURL",
    "httpx.UnsupportedProtocol", "httpx.InvalidURL",
)  # fmt: skip
_TIMEOUT = (TimeoutError, asyncio.TimeoutError) + _types(
    "httpx2.TimeoutException", "httpx.TimeoutException"
)


def transport_cause(exc: BaseException) -> str | None:
    """The transport cause of ``exc`` (a key of ``CAUSES``), or None when ``exc`` is not a
    transport failure (e.g. an HTTP error status)."""
    import openai

    chain = list(_chain(exc))
    if not any(isinstance(e, (openai.APIConnectionError, OSError)) for e in chain):
        return None
    ordered: list[tuple[str, tuple[type[BaseException], ...]]] = [
        ("connection_refused", (ConnectionRefusedError,)),
        ("name_not_resolved", (socket.gaierror,)),
        ("tls_error", (ssl.SSLError,)),
        ("connection_dropped", _DROPPED),
        ("invalid_url", _INVALID_URL),
        ("timeout", _TIMEOUT),
        ("unreachable", (OSError,)),
    ]
    for cause, types in ordered:
        if types and any(isinstance(e, types) for e in chain):
            return cause
    return "connection_error"


def describe_cause(cause: str | None) -> str:
    return CAUSES.get(cause or "", "the connection failed")
