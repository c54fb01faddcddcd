"""Reaching a Ray cluster's Jobs API from a laptop: its address, the auth token, a checked client.

``connect(address)`` returns Ray's ``JobSubmissionClient`` after one probe request
(``/api/version``) that tells the cases apart by HTTP status, never by message text: a
dashboard that cannot be reached, a missing token (401), a token it rejects (403). The token
is found where Ray finds it (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``;
``sealed_env.ray_auth_token``). ``mathsynth submit`` and ``mathsynth watch`` both connect
through here.

A head that is still coming up (``ray up`` just returned, the dashboard not listening yet, or
answering 5xx while its modules load) is waited for, up to ``wait_s`` (tenacity, exponential
backoff); auth answers (401/403) are final at once.

What it does NOT do: open SSH tunnels (``ray dashboard cluster.yaml``) or fetch tokens from a
head.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import requests
import tenacity

from orchestrator.cluster.sealed_env import ray_auth_token

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TOKEN_HELP = (
    "run `ray get-auth-token` on the head node (e.g. `ray exec cluster.yaml "
    "'ray get-auth-token'`) and put it in RAY_AUTH_TOKEN or ~/.ray/auth_token"
)


class JobsAPIError(RuntimeError):
    """The cluster's Jobs API cannot be used; the message says what to do."""


class JobsHTTPError(JobsAPIError):
    """The Jobs API answered a request with an error ``status`` (Ray's client raises a bare
    ``RuntimeError`` for that; ours raises this, so callers decide by status, not text)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"Jobs API answered HTTP {status}: {text.strip()[:500]}")
        self.status = status


@functools.cache
def _client_class() -> type:
    from ray.job_submission import JobSubmissionClient

    class CheckedJobClient(JobSubmissionClient):  # type: ignore[misc]
        """Ray's client, raising ``JobsHTTPError`` (with the status) on error answers."""

        def _raise_error(self, r: requests.Response) -> None:
            raise JobsHTTPError(r.status_code, r.text)

    return CheckedJobClient


def dashboard_address(address: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """--address, else RAY_API_SERVER_ADDRESS, else an http RAY_ADDRESS, else localhost:8265."""
    ray_address = environ.get("RAY_ADDRESS", "")
    address = (
        address
        or environ.get("RAY_API_SERVER_ADDRESS")
        or (ray_address if ray_address.startswith(("http://", "https://")) else DEFAULT_ADDRESS)
    )
    return (address if "://" in address else f"http://{address}").rstrip("/")


class _Starting(Exception):
    """The Jobs API answered 5xx: the head is up but not ready."""


def _probe(address: str, headers: dict[str, str], wait_s: float) -> requests.Response:
    """``GET /api/version``, retried while the head cannot be reached or answers 5xx."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((requests.ConnectionError, _Starting)),
        stop=tenacity.stop_after_delay(wait_s),
        wait=tenacity.wait_exponential(multiplier=0.25, max=5),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            probe = requests.get(f"{address}/api/version", headers=headers, timeout=15)
            if probe.status_code >= 500:
                raise _Starting(f"HTTP {probe.status_code}")
    return probe


def connect(address: str, token: str | None = None, wait_s: float = 30.0) -> Any:
    """A ``JobSubmissionClient`` for ``address``, after checking that the token is accepted;
    waits up to ``wait_s`` for a head that is still starting."""
    from ray.exceptions import AuthenticationError

    token = token or ray_auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        probe = _probe(address, headers, wait_s)
    except requests.ConnectionError:
        raise JobsAPIError(
            f"cannot reach the Ray dashboard at {address} (waited {wait_s:g} s); for a cluster "
            "started with `ray up cluster.yaml`, keep `ray dashboard cluster.yaml` running (an "
            f"SSH tunnel to the head's 127.0.0.1:8265) or pass --address"
        ) from None
    except _Starting as err:
        raise JobsAPIError(
            f"the Ray dashboard at {address} is not ready after {wait_s:g} s ({err}); see the "
            "head's dashboard log (/tmp/ray/session_latest/logs/dashboard.log)"
        ) from None
    if probe.status_code == 401:
        raise JobsAPIError(f"{address} requires a Ray auth token and none was found: {TOKEN_HELP}")
    if probe.status_code == 403:
        raise JobsAPIError(
            f"{address} rejected the Ray auth token found here (it belongs to another "
            f"cluster or is out of date): {TOKEN_HELP}"
        )
    try:
        return _client_class()(address, headers=headers)
    except AuthenticationError:
        raise JobsAPIError(f"{address} refused the Ray auth token: {TOKEN_HELP}") from None
