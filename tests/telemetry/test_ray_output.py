"""Ray's own output in a mathsynth process: no colour codes where stdout/stderr is not a
terminal, and no start-up warnings a user cannot act on when mathsynth starts its own Ray.
The Ray test runs in a subprocess (its own private local Ray, pipes for stdout/stderr)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.telemetry.ray_output import AnsiStripped, strip_ansi

ROOT = Path(__file__).resolve().parents[2]
RAY_LINE = (
    "\x1b[36m(GenerationWorker pid=3946)\x1b[0m hello\x1b[32m [repeated 2x across cluster]\x1b[0m\n"
)

SCRIPT = """
import ray
from orchestrator.engine.ray_session import ensure_ray
from orchestrator.telemetry.ray_output import plain_streams

plain_streams()
ensure_ray(num_cpus=1)

@ray.remote
class Echo:
    async def hello(self):
        ray.get(ray.put(1))  # a blocking get inside an async actor: Ray warns about it
        print("hello from the actor", flush=True)
        return 1

assert ray.get(Echo.remote().hello.remote()) == 1
import time
time.sleep(3)  # the actor's log line reaches the driver
ray.shutdown()
"""


def test_ansi_codes_are_stripped_from_what_goes_through() -> None:
    assert (
        strip_ansi(RAY_LINE) == "(GenerationWorker pid=3946) hello [repeated 2x across cluster]\n"
    )
    assert strip_ansi("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ plain") == "link plain"
    sink = io.StringIO()
    stream = AnsiStripped(sink)
    assert stream.write(RAY_LINE) == len(RAY_LINE)
    assert "\x1b" not in sink.getvalue() and stream.isatty() is False


@pytest.mark.timeout(180)
def test_a_private_ray_prints_no_colour_and_no_startup_warnings() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_COLOR_PREFIX")}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=170)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "(Echo pid=" in output and "hello from the actor" in output  # Ray's forwarded line
    assert "\x1b" not in output, output
    assert "blocking ray.get inside async actor" not in output, output
    assert "Token authentication is" not in output, output
