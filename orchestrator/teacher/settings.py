"""How to reach the teacher: the ``teacher:`` section of a job config, as pydantic models.

``TeacherSettings`` (endpoint, model, timeouts, retry budget, length policy, ``kind``-specific
options) with its nested ``RateLimits`` (hosted-API limits shared by every actor of a job) and
``BatchSettings`` (``kind: openai-batch``). Validation is by field constraints, plus
``base_url`` being an http(s) URL.

What it does NOT do: read the environment, hold the API key (only the *name* of the variable that
holds it), send requests (``client.py``), enforce the limits (``orchestrator.teacher.ratelimit``)
or start vLLM servers (``replicas.py``).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic

from orchestrator.teacher.pricing import Price
from orchestrator.teacher.replica_config import ReplicaSettings

__all__ = ["BatchSettings", "RateLimits", "TeacherSettings"]


def _self_hosted(base_url: str | None) -> bool:
    """A URL on this machine or a private network (an IP literal in a loopback, private or
    link-local range, or ``localhost``)."""
    host = urlsplit(base_url).hostname if base_url else None
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


class RateLimits(pydantic.BaseModel):
    """Hosted-API limits shared by every actor of a job (None = unlimited); enforced by
    ``orchestrator.teacher.ratelimit``."""

    model_config = pydantic.ConfigDict(extra="forbid")

    requests_per_minute: float | None = pydantic.Field(None, gt=0)
    tokens_per_minute: float | None = pydantic.Field(None, gt=0)  # input + output
    input_tokens_per_minute: float | None = pydantic.Field(None, gt=0)
    output_tokens_per_minute: float | None = pydantic.Field(None, gt=0)
    max_in_flight: int | None = pydantic.Field(None, ge=1)  # job-wide concurrent requests
    # x-ratelimit-* response headers fill unset limits. None (default): learn from a hosted
    # API's headers, not from a server on this machine or a private network (vLLM, llama.cpp,
    # SGLang send none), which then needs no job-wide limiter at all.
    learn_from_headers: bool | None = None

    def learns(self, base_url: str | None) -> bool:
        """Whether headers are learned from the teacher at ``base_url`` (None: the SDK's
        default URL, a hosted API)."""
        if self.learn_from_headers is not None:
            return self.learn_from_headers
        return not _self_hosted(base_url)

    def configured(self) -> bool:
        """True when any limit is set explicitly."""
        return any(
            v is not None
            for v in (
                self.requests_per_minute,
                self.tokens_per_minute,
                self.input_tokens_per_minute,
                self.output_tokens_per_minute,
                self.max_in_flight,
            )
        )


class BatchSettings(pydantic.BaseModel):
    """``kind: openai-batch``: requests go through the provider's Batch API (files + batches)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    max_requests: int = pydantic.Field(1000, ge=1)  # requests per submitted batch file
    collect_s: float = pydantic.Field(5.0, ge=0)  # wait this long for more requests to join
    poll_s: float = pydantic.Field(30.0, gt=0)  # batch status polling interval
    completion_window: str = "24h"


class TeacherSettings(pydantic.BaseModel):
    """How to reach the teacher. Holds the *name* of the key's environment variable, not the key.

    ``kind``: ``openai`` (any OpenAI-compatible server at ``base_url``), ``vllm`` (mathsynth
    starts ``replicas`` vLLM servers as Ray actors, each on ``tensor_parallel_size`` GPUs, with
    ``engine_args``), or ``openai-batch`` (the provider's Batch API, see ``batch``).
    ``on_length``: what to do with a reply cut by ``max_tokens`` (``finish_reason == "length"``):
    ``keep`` it, ``retry`` with ``length_retry_factor`` times the budget (up to
    ``length_max_tokens``, then reject), or ``reject`` it with reason ``length``."""

    model_config = pydantic.ConfigDict(extra="forbid")

    kind: Literal["openai", "vllm", "openai-batch"] = "openai"
    base_url: str | None = None  # None -> env OPENAI_BASE_URL (then the SDK default)
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    connect_timeout_s: float = pydantic.Field(10.0, gt=0)
    read_timeout_s: float = pydantic.Field(600.0, gt=0)
    max_attempts: int = pydantic.Field(6, ge=1)
    backoff_initial_s: float = pydantic.Field(1.0, ge=0)
    backoff_max_s: float = pydantic.Field(60.0, ge=0)
    use_aiohttp: bool = True
    price: Price | None = None  # $/1M tokens; default from orchestrator/teacher/prices.yaml
    limits: RateLimits = pydantic.Field(default_factory=RateLimits)
    on_length: Literal["keep", "retry", "reject"] = "retry"
    length_retry_factor: float = pydantic.Field(2.0, gt=1)
    length_max_tokens: int = pydantic.Field(8192, ge=1)
    # kind: vllm
    replicas: int = pydantic.Field(1, ge=1)
    tensor_parallel_size: int = pydantic.Field(1, ge=1)
    engine_args: dict[str, Any] = pydantic.Field(default_factory=dict)
    replica: ReplicaSettings = pydantic.Field(default_factory=ReplicaSettings)
    # kind: openai-batch
    batch: BatchSettings = pydantic.Field(default_factory=BatchSettings)

    @pydantic.field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """A base URL must be ``http(s)://host[:port][/path]``: anything else fails every
        request the same way, so it is refused at load."""
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            raise ValueError(f"base_url {value!r} has an invalid port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"base_url {value!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)"
            )
        return value
