"""The live panel in a real terminal: ``mathsynth run`` inside a tmux pane against the scripted
teacher (a subprocess with latency), the pane captured while it starts and twice while it runs,
at 160x50 and at 80x24 (where the panel must still fit: a line wider than the pane would wrap
onto the next, a panel taller than it would scroll its top away).

tmux runs on its own socket (``-L``), so only the tmux server this test started is touched,
and it is ended with ``kill-server`` on that socket. Skipped when tmux is not installed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY_FIELDS = ("seeds ", "requests ", "in flight ", "waiting for a slot", "tokens/s", "ETA",
              "filter funnel", "rejected by reason", "written ", "pending commit",
              "sandbox running")  # fmt: skip
WIDE_FIELDS = ("nodes and actors", "worker-0")  # 80x24 has them on one line: "actors 1 alive"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def teacher() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_server", "--port", "0", "--latency",
         "0.4", "--reply", "tests.support.tinygsm_teacher:tinygsm_reply", "--model", "m"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert line.startswith("READY "), line
        yield line.split()[1]
    finally:
        proc.kill()
        proc.wait()


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, check=True
    ).stdout


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found, (pattern, text)
    return int(found.group(1))


def panel_lines(pane: str) -> list[str]:
    """The pane's lines from the panel's top border to its bottom border."""
    lines = pane.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("╭─ mathsynth"))
    bottom = next(i for i in range(len(lines) - 1, top, -1) if lines[i].startswith("╰"))
    return lines[top : bottom + 1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("size", [(160, 50), (80, 24)], ids=["160x50", "80x24"])
def test_live_panel_in_a_real_terminal(
    tmp_path: Path, teacher: str, gsm8k_train: Path, size: tuple[int, int]
) -> None:
    width, height = size
    socket = f"mathsynth-test-{os.getpid()}-{width}"
    command = shlex.join([
        sys.executable, "-m", "orchestrator", "run", "tinygsm", "--seeds", str(gsm8k_train),
        "--limit", "40", "--out", str(tmp_path / "out"), "--base-url", teacher, "--model", "m",
        "--workers", "1", "--concurrency", "2", "--no-decontaminate",
    ])  # fmt: skip
    env = "-u RAY_ADDRESS RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 PYTHONUNBUFFERED=1"
    env += f" COLUMNS={width} LINES={height}"
    tmux(socket, "new-session", "-d", "-s", "run", "-x", str(width), "-y", str(height),
         "-c", str(ROOT), f"env {env} {command}; sleep 600")  # fmt: skip
    starting = False
    try:
        deadline, first = time.monotonic() + 180, ""
        while time.monotonic() < deadline:
            first = tmux(socket, "capture-pane", "-p", "-t", "run")
            starting = starting or ("starting up" in first and "starting Ray" in first)
            if "filter funnel" in first and number(r"requests (\d+)", first) > 0:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"no live panel with requests in the pane:\n{first}")
        time.sleep(4)
        second = tmux(socket, "capture-pane", "-p", "-t", "run")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    assert starting, "no start-up steps on screen before the panel"
    fields = KEY_FIELDS + (WIDE_FIELDS if width >= 160 else ())
    for field in fields:
        assert field in first and field in second, field
    assert number(r"requests (\d+)", second) > number(r"requests (\d+)", first), second
    assert number(r"seeds (\d+)/40", second) >= number(r"seeds (\d+)/40", first)
    for pane in (first, second):  # the whole panel on screen, no line wrapped
        panel = panel_lines(pane)
        assert len(panel) <= height
        assert all(line.rstrip().startswith("│") and line.rstrip().endswith("│")
                   for line in panel[1:-1]), pane  # fmt: skip
