"""Exceptions raised by the teacher client.

``TeacherError`` is a teacher request that failed for good (after retries, or at once for errors
that retrying cannot fix); ``TeacherFatalError`` means the whole run must stop (the server
rejected the API key). Both carry a ``kind`` (a short machine-readable reason), the HTTP
``status`` when there was one, ``attempts`` (HTTP attempts made) when known, and ``cause``: why
no usable answer came (a transport cause of ``transport.py`` such as ``connection_refused``, or
for malformed replies ``html_body`` / ``empty_body`` / ``not_json`` / ``not_completion``).

They hold only plain data, so they pickle cleanly across Ray actors. They never hold the API key,
the request, or the response; the underlying SDK exception, when relevant, is the ``__cause__``
(which pickling drops). This module does not classify errors; ``failures.py`` does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TeacherError", "TeacherFatalError"]


class TeacherError(Exception):
    """A teacher request that failed for good.

    ``kind`` is one of: ``"bad_request"`` (400), ``"not_found"`` (404), ``"unprocessable"``
    (422), ``"client_error"`` (other non-retried 4xx), ``"retries_exhausted"`` (transient
    failures until ``max_attempts``), ``"malformed_reply"`` (200 replies that are not a chat
    completion, after a few attempts); for ``TeacherFatalError`` ``"unauthorized"`` (401) or
    ``"forbidden"`` (403).
    """

    def __init__(
        self,
        message: str,
        kind: str = "error",
        status: int | None = None,
        attempts: int | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.attempts = attempts
        self.cause = cause

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.kind, self.status, self.attempts, self.cause))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, status={self.status!r}, "
            f"attempts={self.attempts!r}, cause={self.cause!r}, message={self.message!r})"
        )


class TeacherFatalError(TeacherError):
    """The run must stop: the teacher rejected the credentials (HTTP 401/403).

    The message says which environment variable to fix; it never contains the key.
    """
