"""A real S3-compatible HTTP server on 127.0.0.1 (moto's) for tests of object-store output.

``s3_server`` (session) starts ``moto.server.ThreadedMotoServer`` on a free loopback port;
``s3_env`` (per test) points the standard AWS variables at it (endpoint, fake credentials,
region), so s3fs in this process, in subprocesses and in Ray workers (which get them forwarded)
all reach it; ``s3_bucket`` creates a fresh bucket and returns its name. Nothing is mocked
inside the process: every read and write is HTTP to the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def s3_bucket(s3_env: dict[str, str]) -> str:
    import fsspec

    name = f"test-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return name
