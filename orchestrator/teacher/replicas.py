"""One teacher replica: a Ray actor that owns one OpenAI-compatible server process.

``TeacherReplica.start()`` launches the server (vLLM's, or ``teacher.replica.launcher``) on a
free port of its node's IP, waits until ``GET <health_path>`` answers 200, and returns where it
serves (``info()``: base URL, incarnation, GPUs). ``check()`` is one health probe ("ok",
"unhealthy" or "down"); ``stop_server()`` ends the server's whole process group. The server is
started with a parent-death signal, so when the actor process dies (crash, ``ray.kill``) its
server dies with it and the GPUs are freed for the restarted actor.

Why a subprocess server rather than vLLM's in-process async engine: the same client path
(``TeacherClient``, retries, rate-limit headers) serves hosted APIs, the CPU teacher and vLLM,
any OpenAI-compatible server can be a replica (tests use the scripted server), and a wedged
engine is killed with its process group instead of poisoning the actor's event loop.

``replica_placement`` turns settings into Ray actor options: ``num_gpus`` (default the tensor
parallel size; a STRICT_PACK placement group of one bundle when it is > 1), ``num_cpus`` and
custom ``resources`` (e.g. ``{teacher: 1}``), and ``max_restarts``.

What it does NOT do: decide when a replica is unhealthy or restart it (the supervisor in
``orchestrator.teacher.pool`` does, through Ray actor restarts), route requests
(``orchestrator.teacher.routing``), or import vLLM (only ``find_spec`` on the replica's node).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import ray

from orchestrator.teacher.launch import TeacherSetupError, free_port, server_command
from orchestrator.teacher.settings import TeacherSettings

__all__ = ["TeacherReplica", "replica_placement"]

# Exec shim: set PR_SET_PDEATHSIG=SIGKILL, give up if the parent is already gone, then exec the
# server (the signal survives exec). Done in the child itself, not in a preexec_fn, which is
# unsafe in a multi-threaded process such as a Ray worker.
_DEATH_SHIM = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "os.getppid() == int(sys.argv[1]) or sys.exit(70)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def replica_placement(settings: TeacherSettings) -> tuple[dict[str, Any], dict[str, float] | None]:
    """(actor options, placement-group bundle or None) for one replica of ``settings``."""
    r = settings.replica
    gpus = float(settings.tensor_parallel_size if r.num_gpus is None else r.num_gpus)
    options: dict[str, Any] = {
        "num_gpus": gpus,
        "num_cpus": r.num_cpus,
        "max_restarts": r.max_restarts,
        "max_task_retries": 0,
    }
    if r.resources:
        options["resources"] = dict(r.resources)
    if gpus <= 1:
        return options, None
    bundle = {"GPU": gpus, "CPU": r.num_cpus, **r.resources}
    return options, {k: v for k, v in bundle.items() if v > 0}


def _get(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@ray.remote
class TeacherReplica:
    """A server process on this actor's node and resources (see module docstring)."""

    def __init__(self, settings_json: str, index: int) -> None:
        self.settings = TeacherSettings.model_validate_json(settings_json)
        self.index = index
        self.host = ray.util.get_node_ip_address()
        self.incarnation = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # changes on every restart
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def _root(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> dict[str, Any]:
        """Launch the server (if not running) and wait until it is healthy; returns ``info()``.
        Raises ``TeacherSetupError`` (``permanent`` when retrying cannot help)."""
        if self._proc is not None and self._proc.poll() is None:
            return self.info()
        r = self.settings.replica
        self.port = free_port(self.host)
        cmd = server_command(self.settings, self.host, self.port)
        fd, log = tempfile.mkstemp(prefix=f"mathsynth-replica{self.index}-", suffix=".log")
        self._log = Path(log)
        shim = [sys.executable, "-c", _DEATH_SHIM, str(os.getpid())]
        try:
            self._proc = subprocess.Popen(
                [*shim, *cmd], stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **r.env}, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(fd)
        deadline = time.monotonic() + r.startup_timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                permanent = code == 127  # command not found
                raise TeacherSetupError(
                    f"teacher replica {self.index} on {self.host}: server exited with code "
                    f"{code} while starting ({' '.join(cmd[:4])} ...); log {log}:\n"
                    f"{self.log_tail()}",
                    permanent=permanent,
                )
            if _get(self._root + r.health_path, r.health_timeout_s):
                return self.info()
            time.sleep(0.25)
        self.stop_server()
        raise TeacherSetupError(
            f"teacher replica {self.index} on {self.host}: not healthy within "
            f"{r.startup_timeout_s:g} s; log {log}:\n{self.log_tail()}"
        )

    def incarnation_id(self) -> str:
        """Which process answers: it changes when Ray restarts the actor."""
        return self.incarnation

    def info(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "url": f"{self._root}/v1",
            "incarnation": self.incarnation,
            "node": self.host,
            "server_pid": self._proc.pid if self._proc is not None else None,
            "actor_pid": os.getpid(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        }

    def check(self) -> str:
        """One probe: ``down`` (no server process), ``ok`` (health answered 200) or
        ``unhealthy``."""
        if self._proc is None or self._proc.poll() is not None:
            return "down"
        r = self.settings.replica
        return "ok" if _get(self._root + r.health_path, r.health_timeout_s) else "unhealthy"

    def log_tail(self, lines: int = 30) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def stop_server(self, graceful: bool = True) -> None:
        """End the server's whole process group (vLLM's engine processes too): SIGTERM and up
        to 10 s to exit when ``graceful``, then SIGKILL to the group in any case."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if graceful:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10.0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10.0)
