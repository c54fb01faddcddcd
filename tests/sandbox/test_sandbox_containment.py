"""Containment tests for ``orchestrator.sandbox``: real subprocesses running hostile code.

Each hostile case checks that the run ends in bounded time with the right status and that the
machine is unharmed: no process of the run survives (found by a unique marker in the argv the
program gives itself and, as root, by the run's pool uid), no file appears outside the work
dir, work dirs are removed, nothing is left as a zombie, the test process's memory is
untouched. The `mode`-parametrized cases run on the warm pool (``pool``: root and bubblewrap;
skipped with the reason otherwise), under one bubblewrap sandbox per run (``bwrap``,
``warm=False``) and under the fallback (``use_bwrap=False``; parts that rely on dropping root
privileges skip when not root). Network checks use loopback addresses only (the outbound check
is a UDP connect: a route lookup that sends no packet). They do NOT test the launcher's
internals in isolation.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sandbox import ExecResult, Sandbox, SandboxError, SandboxLimits, runner
from orchestrator.sandbox.bwrap import find_bwrap

pytestmark = pytest.mark.timeout(60)

IS_ROOT = os.geteuid() == 0
PROJECT_DIR = Path(__file__).resolve().parents[2]
FAST = {"wall_time_s": 3.0, "cpu_time_s": 10}


def _skip_reason(mode: str) -> str | None:
    if find_bwrap() is None:
        return "bubblewrap (bwrap) is not installed (CI installs the Debian package 'bubblewrap')"
    why_not = runner.probe(mode)
    return None if why_not is None else f"{mode} does not work on this machine: {why_not}"


def _make(mode: str, work_root: Path, **limits: Any) -> Sandbox:
    if mode in ("pool", "bwrap"):
        reason = _skip_reason(mode)
        if reason:
            pytest.skip(reason)
        warm = mode == "pool"
        sb = Sandbox(SandboxLimits(use_bwrap=True, **limits), work_root=work_root, warm=warm)
        assert sb.isolation == (runner.ISOLATION_POOL if warm else runner.ISOLATION_BWRAP)
    else:
        sb = Sandbox(SandboxLimits(use_bwrap=False, **limits), work_root=work_root)
        assert sb.isolation.startswith("rlimits-only")
    return sb


@pytest.fixture
def work_root() -> Iterator[Path]:
    """Parent of the runs' work dirs; must be empty again after every test."""
    path = Path(tempfile.mkdtemp(prefix="sbx-test-root-"))
    path.chmod(0o755)
    yield path
    leftovers = list(path.iterdir())
    shutil.rmtree(path, ignore_errors=True)
    assert leftovers == [], f"work dirs not removed: {leftovers}"


@pytest.fixture(params=["pool", "bwrap", "fallback"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["pool", "bwrap"])
def jailed(request: pytest.FixtureRequest) -> str:
    """The modes with network and filesystem isolation."""
    return str(request.param)


def workdir_of(mode: str, work_root: Path) -> str:
    """Where the program's cwd is: the pool's private tmpfs, else a dir under ``work_root``."""
    return "/tmp" if mode == "pool" else str(work_root)


def marker() -> str:
    return f"sbx-marker-{secrets.token_hex(8)}"


def with_marker(body: str, mark: str) -> str:
    """Program that re-execs itself as ``python -c BODY MARK`` so /proc shows the marker."""
    return (
        "import os, sys\n"
        f"os.execv(sys.executable, [sys.executable, '-I', '-c', {body!r}, {mark!r}])\n"
    )


def pids_with(mark: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark.encode() in cmdline.split(b"\0") and state not in ("Z", "X"):
            found.append(int(name))
    return found


def pids_of_uid(uid: int, zombies: bool = False) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            lines = Path(f"/proc/{name}/status").read_text().splitlines()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        dead = fields["State"].split()[0] in "ZX"
        if int(fields["Uid"].split()[0]) == uid and (zombies or not dead):
            found.append(int(name))
    return found


def process_count() -> int:
    """Processes that can still run (zombies wait for init to reap them)."""
    count = 0
    for name in os.listdir("/proc"):
        try:
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state not in ("Z", "X")
    return count


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def assert_gone(mark: str, uid: int | None = None) -> None:
    assert pids_with(mark) == [], f"processes with {mark} survived"
    if uid is not None and IS_ROOT:
        assert pids_of_uid(uid) == [], f"processes of sandbox uid {uid} survived"
        # Everything was reaped by its own parent: no zombies left for the host's init.
        assert pids_of_uid(uid, zombies=True) == [], f"zombies of sandbox uid {uid} left"


# 1. normal programs -----------------------------------------------------------------------


def test_normal_stdin_and_error(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root)
    res = sb.run_sync("print(sum(range(10)))")
    assert (res.status, res.ok, res.returncode, res.stdout) == ("ok", True, 0, "45\n")
    assert not res.truncated and res.duration_s < 5
    res = sb.run_sync("import sys\nprint(sys.stdin.read().upper(), end='')", stdin="abc\ndef\n")
    assert res.ok and res.stdout == "ABC\nDEF\n"
    res = sb.run_sync("def f():\n    raise ValueError('boom')\nf()\n")
    assert (res.status, res.ok, res.returncode) == ("error", False, 1)
    assert "Traceback" in res.stderr and "ValueError: boom" in res.stderr
    res = sb.run_sync("import sys; sys.exit(3)")
    assert (res.status, res.returncode) == ("error", 3)


def test_runs_unprivileged_in_fresh_work_dir(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root)
    res = sb.run_sync("import os; print(os.getuid(), os.getgid(), os.getgroups(), os.getcwd())")
    uid, gid, groups, cwd = res.stdout.split(" ", 3)
    if mode == "pool":
        assert res.ok and cwd.strip() == "/tmp"
    else:
        assert res.ok and Path(cwd.strip()).parent == work_root
    if IS_ROOT:
        assert int(uid) >= 60000 and int(gid) >= 60000 and groups == "[]"


def test_no_capabilities_and_no_new_privileges(mode: str, work_root: Path) -> None:
    """The warm runner holds four capabilities; none may reach the program or what it runs."""
    sb = _make(mode, work_root)
    code = (
        "import subprocess, sys\n"
        "def status():\n"
        "    return [ln for ln in open('/proc/self/status') if ln.startswith(('Cap', 'NoNew'))]\n"
        "print(''.join(status()), end='')\n"
        "child = subprocess.run([sys.executable, '-c', "
        "'print(open(\"/proc/self/status\").read())'], capture_output=True, text=True)\n"
        "print(''.join(ln + '\\n' for ln in child.stdout.splitlines() if ln.startswith('Cap')))\n"
    )
    res = sb.run_sync(code)
    assert res.ok, res
    fields = [line.split(":") for line in res.stdout.split("\n") if ":" in line]
    caps = {(k, v.strip()) for k, v in fields if k.startswith("Cap") and k != "CapBnd"}
    assert {v for _, v in caps} == {"0000000000000000"}, res.stdout
    assert len(caps) == 4 and len([k for k, _ in fields if k == "CapEff"]) == 2
    if mode != "fallback":
        assert ("NoNewPrivs", "\t1") in [(k, v) for k, v in fields]


# 2. network -------------------------------------------------------------------------------


def test_no_network(jailed: str, work_root: Path) -> None:
    sb = _make(jailed, work_root)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    print('connected')\n"
        "except OSError as e:\n"
        "    print('connect failed', type(e).__name__)\n"
        "print('interfaces', sorted(n for _, n in socket.if_nameindex()))\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"  # route lookup only, no packet
        "try:\n"
        "    u.connect(('192.0.2.1', 53))\n"
        "    print('route to outside')\n"
        "except OSError as e:\n"
        "    print('no route', type(e).__name__)\n"
    )
    try:
        res = sb.run_sync(code)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert res.ok, res.stderr
    assert "connect failed" in res.stdout and "connected" not in res.stdout.split()
    assert "interfaces ['lo']" in res.stdout
    assert "no route" in res.stdout


def test_network_when_allowed(jailed: str, work_root: Path) -> None:
    sb = _make(jailed, work_root, network=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
        res = sb.run_sync(code)
        listener.settimeout(1)
        conn, _ = listener.accept()
        conn.close()
    assert res.ok, res


# 3. fork bomb -----------------------------------------------------------------------------


def test_fork_bomb(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root, **FAST)
    mark = marker()
    body = (
        "import os, sys\n"
        f"if os.getcwd().startswith({workdir_of(mode, work_root)!r}) and os.getuid() != 0:\n"
        "    print(os.getuid(), flush=True)\n"
        "    while True:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except OSError:\n"
        "            pass\n"
    )
    assert sb.run_sync("pass").ok  # a pool starts its runner now, not during the count
    before = process_count()
    start = time.monotonic()
    res = sb.run_sync(with_marker(body, mark))
    elapsed = time.monotonic() - start
    assert res.status in ("timeout", "killed"), res
    assert elapsed < FAST["wall_time_s"] + 3
    assert_gone(mark, int(res.stdout.split()[0]))
    deadline = time.monotonic() + 3  # other work on the machine may come and go meanwhile
    while process_count() > before + 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_count() <= before + 10


def test_process_limit(mode: str, work_root: Path) -> None:
    if mode == "fallback" and not IS_ROOT:
        pytest.skip("as non-root the limit is relative to this uid's other processes")
    sb = _make(mode, work_root, max_processes=6)
    code = (
        "import os, time\n"
        "n = 0\n"
        "while n < 100:\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3)\n"
        "            os._exit(0)\n"
        "    except OSError:\n"
        "        break\n"
        "    n += 1\n"
        "print(n)\n"
    )
    res = sb.run_sync(code)
    assert res.ok, res
    assert 0 < int(res.stdout) < 6  # the program itself is one of the six


# 4. memory --------------------------------------------------------------------------------


def test_unbounded_allocation(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root, memory_mb=256, **FAST)
    rss_before = rss_mb()
    res = sb.run_sync("x = []\nwhile True:\n    x.append(bytearray(10**7))\n")
    assert res.status in ("killed", "error"), res
    if res.status == "error":
        assert "MemoryError" in res.stderr
    assert res.duration_s < 3
    assert rss_mb() - rss_before < 50


# 5. infinite loop -------------------------------------------------------------------------


def test_infinite_loop_times_out(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root, wall_time_s=1.5, cpu_time_s=10)
    mark = marker()
    res = sb.run_sync(with_marker("while True:\n    pass\n", mark))
    assert res.status == "timeout" and not res.ok, res
    assert 1.5 <= res.duration_s < 4
    assert_gone(mark)


def test_cpu_limit_kills(jailed: str, work_root: Path) -> None:
    sb = _make(jailed, work_root, wall_time_s=10.0, cpu_time_s=1)
    res = sb.run_sync("while True:\n    pass\n")
    assert res.status == "killed" and res.returncode is not None and res.returncode < 0, res
    assert res.duration_s < 5


def test_file_size_limit(jailed: str, work_root: Path) -> None:
    sb = _make(jailed, work_root, max_file_mb=1)
    code = (
        "import errno\n"
        "try:\n"
        "    open('big', 'wb').write(b'x' * (2 * 2**20))\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    res = sb.run_sync(code)
    assert res.ok and res.stdout == "EFBIG\n", res


# 6. writing outside the work dir ---------------------------------------------------------


def test_cannot_write_outside(mode: str, work_root: Path, tmp_path: Path) -> None:
    if mode == "fallback" and not IS_ROOT:
        pytest.skip("the fallback relies on dropping root privileges; not running as root")
    sb = _make(mode, work_root)
    name = marker()
    system_tmp = Path(tempfile.gettempdir()).resolve()
    shared = Path(tempfile.mkdtemp(prefix="sbx-target-"))  # root-owned 0755, reachable
    shared.chmod(0o755)
    tmp_path.chmod(0o755)
    refused = [tmp_path / name, shared / name]
    for extra in (PROJECT_DIR, Path.home()):
        # Without bubblewrap only Unix permissions protect a directory.
        open_to_all = bool(extra.stat().st_mode & stat.S_IWOTH)
        # Under /tmp (a clone there, say) bubblewrap's private /tmp may hold the write: it
        # must not reach the host (checked below), but it is not refused outright.
        under_tmp = extra.resolve().is_relative_to(system_tmp)
        if not under_tmp and (mode != "fallback" or not open_to_all):
            refused.append(extra / name)
    # /tmp: bubblewrap gives a private tmpfs; the fallback (as root) deletes the uid's files.
    targets = [*refused, system_tmp / name]
    code = (
        "import os\n"
        f"for p in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        with open(p, 'w') as fh:\n"
        "            fh.write('pwned')\n"
        "        print('wrote', p)\n"
        "    except OSError as e:\n"
        "        print('refused', p, type(e).__name__)\n"
        "open('inside.txt', 'w').write('fine')\n"
        "print('inside ok')\n"
    )
    try:
        res = sb.run_sync(code)
        assert res.ok and "inside ok" in res.stdout, res
        for target in targets:
            assert not target.exists(), f"{target} was created: {res.stdout}"
        for target in refused:  # refused outright, not just cleaned up afterwards
            assert f"refused {target}" in res.stdout
        assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        for target in targets:
            if target.exists():
                target.unlink()


# 7. huge output ---------------------------------------------------------------------------


def test_huge_output_is_truncated(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root, max_output_bytes=10_000)
    code = "import sys\nchunk = 'x' * 2**20\nfor _ in range(100):\n    sys.stdout.write(chunk)\n"
    res = sb.run_sync(code)
    assert res.ok and res.truncated, res.status
    assert 0 < len(res.stdout.encode()) <= 10_000
    assert res.duration_s < 5


# 8. daemonized child that ignores SIGTERM ------------------------------------------------


def test_daemonized_child_is_killed(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root)
    mark = marker()
    sleeper = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True:\n"
        "    time.sleep(1)\n"
    )
    code = (
        "import os, sys\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-I', '-c', {sleeper!r}, {mark!r}])\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "import time; time.sleep(0.3)\n"
        "print('parent done', os.getuid())\n"
    )
    res = sb.run_sync(code)
    assert res.ok and "parent done" in res.stdout, res
    assert res.duration_s < 4
    assert_gone(mark, int(res.stdout.split()[-1]))


# 9. concurrency ---------------------------------------------------------------------------


def test_concurrent_runs(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root)

    async def main() -> list[ExecResult]:
        jobs = [
            sb.run(f"import sys\nprint({i} * 1000 + int(sys.stdin.read()))", stdin=f"{i}")
            for i in range(8)
        ]
        return await asyncio.gather(*jobs)

    results = asyncio.run(main())
    assert [r.stdout for r in results] == [f"{i * 1001}\n" for i in range(8)]
    assert all(r.ok for r in results)


# 10. cancellation -------------------------------------------------------------------------


def test_cancellation_kills_and_cleans(mode: str, work_root: Path) -> None:
    sb = _make(mode, work_root, wall_time_s=30.0)
    mark = marker()

    async def main() -> None:
        task = asyncio.create_task(sb.run(with_marker("import time\ntime.sleep(10**6)\n", mark)))
        deadline = time.monotonic() + 10
        while not pids_with(mark):
            assert time.monotonic() < deadline, "sandboxed program never started"
            await asyncio.sleep(0.05)
        if mode != "pool":  # the pool writes nothing to the host's disk
            assert list(work_root.iterdir()), "work dir should exist while running"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert_gone(mark)
    assert list(work_root.iterdir()) == []


def test_cancellation_at_any_moment(mode: str, work_root: Path) -> None:
    """Cancelled while starting, exec'ing bubblewrap, or running: nothing survives."""
    sb = _make(mode, work_root, wall_time_s=30.0)
    mark = marker()
    body = "import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(10**6)\n"

    async def one(delay: float) -> None:
        task = asyncio.create_task(sb.run(with_marker(body, mark)))
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def main() -> None:
        delays = [0, 0, 0.001, 0.003, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]
        await asyncio.wait_for(asyncio.gather(*(one(d) for d in delays)), timeout=15)

    start = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - start < 15
    assert_gone(mark)
    assert list(work_root.iterdir()) == []


_OWNER_SCRIPT = """
import asyncio, os, sys, time
from orchestrator.sandbox import Sandbox, SandboxLimits
mode, root, mark, code = sys.argv[1:5]
limits = SandboxLimits(use_bwrap=mode != "fallback", wall_time_s=60)
sb = Sandbox(limits, work_root=root, warm=mode == "pool")

def running() -> bool:
    for name in os.listdir("/proc"):
        try:
            if mark.encode() in open(f"/proc/{name}/cmdline", "rb").read().split(b"\\0"):
                return True
        except OSError:
            pass
    return False

async def main() -> None:
    task = asyncio.create_task(sb.run(code))
    while not running():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # let the daemon detach
    os._exit(3)  # the owner dies abruptly, its sandbox still running

asyncio.run(main())
"""


@pytest.mark.skipif(not IS_ROOT, reason="cleaning up after a dead owner relies on the uid pool")
def test_owner_process_dies(mode: str, work_root: Path) -> None:
    """The process running the sandbox is killed: nothing of the run may live on (bubblewrap and
    the pool: at once; fallback: the next run's uid allocation kills the orphaned pool-uid
    processes)."""
    sb = _make(mode, work_root)
    mark = marker()
    body = "import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(10**6)\n"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}
    argv = [sys.executable, "-c", _OWNER_SCRIPT, mode, str(work_root), mark]
    proc = subprocess.run([*argv, with_marker(body, mark)], env=env, timeout=30)
    assert proc.returncode == 3
    if mode != "fallback":
        deadline = time.monotonic() + 3
        while pids_with(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert_gone(mark)
    assert sb.run_sync("print('next')").stdout == "next\n"
    assert_gone(mark)
    for leftover in work_root.iterdir():  # the dead owner could not remove its work dir
        shutil.rmtree(leftover)


# configuration and failures ---------------------------------------------------------------


def test_crash_when_sandbox_cannot_start(tmp_path: Path) -> None:
    sb = Sandbox(work_root=tmp_path / "missing", warm=False)
    res = sb.run_sync("print(1)")
    assert res.status == "crash" and not res.ok and res.stderr


def test_crash_when_pool_runner_cannot_start(
    monkeypatch: pytest.MonkeyPatch, work_root: Path
) -> None:
    from orchestrator.sandbox import warm_runner

    reason = _skip_reason("pool")
    if reason:
        pytest.skip(reason)
    monkeypatch.setattr(warm_runner, "_SOURCE", "raise SystemExit('broken on purpose')")
    sb = Sandbox(SandboxLimits(wall_time_s=4.25), work_root=work_root, warm=True)  # own pool
    results = [sb.run_sync("print(1)") for _ in range(2)]
    assert [r.status for r in results] == ["crash", "crash"]
    assert all("could not start the sandbox" in r.stderr for r in results)


def test_require_bwrap_when_broken(monkeypatch: pytest.MonkeyPatch, work_root: Path) -> None:
    monkeypatch.setattr(runner, "_probe_results", {})
    monkeypatch.setattr(runner, "find_bwrap", lambda: None)
    with pytest.raises(SandboxError, match="bubblewrap"):
        Sandbox(SandboxLimits(use_bwrap=True))
    sb = Sandbox(work_root=work_root)  # auto: falls back
    assert sb.isolation.startswith("rlimits-only")
    assert sb.run_sync("print('fallback')").stdout == "fallback\n"


def test_limits_reject_unknown_fields() -> None:
    with pytest.raises(ValueError):
        SandboxLimits(wall_time=1)  # type: ignore[call-arg]
