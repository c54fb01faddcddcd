"""Reaching a Ray cluster's Jobs API from a laptop: its address, the auth token, a checked client.

``connect(address)`` returns Ray's ``JobSubmissionClient`` after one probe request
(``/api/version``) that tells the cases apart by HTTP status, never by message text: a
dashboard that cannot be reached, a missing token (401), a token it rejects (403). The token
is found where Ray finds it (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``;
``sealed_env.ray_auth_token``). ``mathsynth submit`` and ``mathsynth watch`` both connect
through here.

What it does NOT do: open SSH tunnels (``ray dashboard cluster.yaml``), fetch tokens from a
head, or retry a Jobs API that is still starting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import requests

from orchestrator.sealed_env import ray_auth_token

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TOKEN_HELP = (
    "run `ray get-auth-token` on the head node (e.g. `ray exec cluster.yaml "
    "'ray get-auth-token'`) and put it in RAY_AUTH_TOKEN or ~/.ray/auth_token"
)


class JobsAPIError(RuntimeError):
    """The cluster's Jobs API cannot be used; the message says what to do."""


def dashboard_address(address: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """--address, else RAY_API_SERVER_ADDRESS, else an http RAY_ADDRESS, else localhost:8265."""
    ray_address = environ.get("RAY_ADDRESS", "")
    address = (
        address
        or environ.get("RAY_API_SERVER_ADDRESS")
        or (ray_address if ray_address.startswith(("http://", "https://")) else DEFAULT_ADDRESS)
    )
    return (address if "://" in address else f"http://{address}").rstrip("/")


def connect(address: str, token: str | None = None) -> Any:
    """A ``JobSubmissionClient`` for ``address``, after checking that the token is accepted."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    token = token or ray_auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        probe = requests.get(f"{address}/api/version", headers=headers, timeout=15)
    except requests.ConnectionError:
        raise JobsAPIError(
            f"cannot reach the Ray dashboard at {address}; for a cluster started with "
            "`ray up cluster.yaml`, keep `ray dashboard cluster.yaml` running (an SSH tunnel "
            f"to the head's 127.0.0.1:8265) or pass --address"
        ) from None
    if probe.status_code == 401:
        raise JobsAPIError(f"{address} requires a Ray auth token and none was found: {TOKEN_HELP}")
    if probe.status_code == 403:
        raise JobsAPIError(
            f"{address} rejected the Ray auth token found here (it belongs to another "
            f"cluster or is out of date): {TOKEN_HELP}"
        )
    try:
        return JobSubmissionClient(address, headers=headers)
    except AuthenticationError:
        raise JobsAPIError(f"{address} refused the Ray auth token: {TOKEN_HELP}") from None
