"""Settings of the teacher replicas that mathsynth starts itself (``teacher.kind: vllm``).

``teacher.replica`` in a pipeline file: what each replica actor reserves from Ray (GPUs, CPUs,
custom resources such as ``{teacher: 1}`` so sandbox workers never land on teacher GPUs), how
its server is launched (vLLM's OpenAI-compatible server by default, or any command given as
``launcher``), and how its health is watched. The number of replicas, the model, the tensor
parallel size and vLLM's engine arguments stay on ``TeacherSettings`` itself.

This module only declares and validates; ``orchestrator.teacher.launch`` builds commands,
``orchestrator.teacher.replicas`` runs them.
"""

from __future__ import annotations

import pydantic

__all__ = ["ReplicaSettings"]


class ReplicaSettings(pydantic.BaseModel):
    """How each teacher replica is placed, launched and watched."""

    model_config = pydantic.ConfigDict(extra="forbid")

    # Ray resources of one replica. num_gpus None = tensor_parallel_size (a placement group of
    # one STRICT_PACK bundle when that is > 1). CPU tests use num_gpus: 0.
    num_gpus: float | None = pydantic.Field(None, ge=0)
    num_cpus: float = pydantic.Field(1.0, ge=0)
    resources: dict[str, float] = pydantic.Field(default_factory=dict)  # e.g. {teacher: 1}
    # Server command. None: `python -m vllm.entrypoints.openai.api_server ...` with the
    # teacher's model, tensor_parallel_size and engine_args. Otherwise a list of arguments in
    # which {python}, {host}, {port}, {model} and {tensor_parallel_size} are filled in; the
    # server must bind {host}:{port} and serve the OpenAI API under /v1.
    launcher: list[str] | None = None
    env: dict[str, str] = pydantic.Field(default_factory=dict)  # added to the server's env
    health_path: str = "/health"  # GET here answers 200 when the server is serving
    startup_timeout_s: float = pydantic.Field(1200.0, gt=0)  # model download + load + warmup
    health_interval_s: float = pydantic.Field(2.0, gt=0)
    health_timeout_s: float = pydantic.Field(5.0, gt=0)
    unhealthy_after: int = pydantic.Field(2, ge=1)  # failed checks in a row before a restart
    max_restarts: int = pydantic.Field(10, ge=0)  # per replica; then it stays down
    poll_s: float = pydantic.Field(1.0, gt=0)  # how often workers refresh the healthy set
