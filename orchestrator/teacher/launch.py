"""The command line of one teacher replica's server, and the checks made before running it.

``server_command`` builds vLLM's OpenAI-compatible server command from ``TeacherSettings``
(``--model``, ``--tensor-parallel-size``, ``--host``, ``--port`` and every ``engine_args`` entry
as a flag), or fills in ``teacher.replica.launcher`` when one is given (tests use it to start the
scripted server; any other OpenAI-compatible server, e.g. SGLang, can be named the same way).
``check_vllm`` is the lazy import check: vLLM is an optional extra and is never imported here or
anywhere in mathsynth; only the replica's node is asked whether it has it.

What it does NOT do: start, watch or stop processes (``orchestrator.teacher.replicas`` does),
or validate engine_args against vLLM (the server reports unknown flags when it starts).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from typing import Any

from orchestrator.teacher.settings import TeacherSettings

__all__ = [
    "INSTALL_HINT",
    "TeacherSetupError",
    "check_vllm",
    "engine_flags",
    "free_port",
    "server_command",
]

INSTALL_HINT = "pip install 'mathsynth[vllm]'"


class TeacherSetupError(RuntimeError):
    """A teacher replica cannot be started. ``permanent``: retrying cannot help (not installed,
    bad launcher); otherwise the start may succeed on a later try (server crashed, timed out)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent

    def __reduce__(self) -> tuple[Any, ...]:  # pickles across Ray with its flag
        return (type(self), (str(self.args[0]) if self.args else "", self.permanent))


def check_vllm(node: str) -> None:
    """Raise a permanent ``TeacherSetupError`` unless vLLM can be imported on this node."""
    if importlib.util.find_spec("vllm") is None:
        raise TeacherSetupError(
            f"teacher kind 'vllm' needs vLLM, which is not installed on node {node} "
            f"({sys.executable}): {INSTALL_HINT}",
            permanent=True,
        )


def free_port(host: str) -> int:
    """A port that is free on ``host`` right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def engine_flags(engine_args: dict[str, Any]) -> list[str]:
    """vLLM flags from ``engine_args``: ``max_model_len: 4096`` -> ``--max-model-len 4096``;
    ``True`` -> ``--flag``, ``False`` -> ``--no-flag``, a list -> ``--flag a b``, a dict -> its
    JSON, ``None`` -> left out."""
    flags: list[str] = []
    for key, value in engine_args.items():
        flag = "--" + str(key).replace("_", "-")
        if value is None:
            continue
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            flags += [flag, *(str(v) for v in value)]
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def server_command(settings: TeacherSettings, host: str, port: int) -> list[str]:
    """The argv of one replica's server (see module docstring); raises ``TeacherSetupError``."""
    launcher = settings.replica.launcher
    fields = {
        "python": sys.executable,
        "host": host,
        "port": str(port),
        "model": settings.model,
        "tensor_parallel_size": str(settings.tensor_parallel_size),
    }
    if launcher is not None:
        try:
            return [part.format(**fields) for part in launcher]
        except (KeyError, IndexError, ValueError) as err:
            raise TeacherSetupError(
                f"teacher.replica.launcher {launcher!r}: bad placeholder ({err}); "
                f"use {', '.join('{' + k + '}' for k in fields)}",
                permanent=True,
            ) from None
    check_vllm(host)
    engine_args = dict(settings.engine_args)
    if settings.tensor_parallel_size > 1:
        # Processes on the GPUs Ray gave this replica (CUDA_VISIBLE_DEVICES), not a second
        # Ray placement inside ours.
        engine_args.setdefault("distributed_executor_backend", "mp")
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", settings.model,
        "--tensor-parallel-size", str(settings.tensor_parallel_size),
        "--host", host, "--port", str(port),
        *engine_flags(engine_args),
    ]  # fmt: skip
