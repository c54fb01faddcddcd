"""Run many small programs in ONE sandboxed process, each in its own forked child.

Starting bubblewrap and a Python interpreter costs ~40-70 ms of CPU per run; a TinyGSM seed
yields ~10 programs, so at scale the start-up, not the programs, would eat the CPU. A batch
pays it once: a stdlib-only runner inside the sandbox forks one child per program (own process
group, fresh sub-directory, its own CPU limit and wall-clock deadline, stdout/stderr capped)
and reports every child's result. The batch as a whole runs under the sandbox's limits scaled
by the number of programs, so containment (no network, read-only filesystem, unprivileged
uid, process cap, memory cap per process) is exactly that of ``Sandbox``.

Programs of one batch share the sandbox: a hostile one can disturb its batch-mates (never the
host). If the runner's report is missing or unreadable, each program is run again alone, so a
program that kills the runner costs time, not other programs' results. ``BatchingExecutor.load``
says how busy the executor is (programs queued and running, slot-seconds used) for the
dashboard. This module does not judge outputs.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from .limits import SandboxLimits
from .result import ExecResult
from .runner import Sandbox

RUNNER = r"""
import json, os, resource, select, signal, sys, time, traceback

def run_one(code, index, wall, cpu, cap):
    base = os.path.join(os.getcwd(), "p%d" % index)
    os.mkdir(base)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = time.monotonic()
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setpgid(0, 0)
            os.chdir(base)
            os.close(out_r); os.close(err_r)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0); os.dup2(out_w, 1); os.dup2(err_w, 2)
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            exec(compile(code, "main.py", "exec"), {"__name__": "__main__"})
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            kind, exc, tb = sys.exc_info()
            traceback.print_exception(kind, exc, tb.tb_next)  # hide the runner's own frame
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(status)
    os.close(out_w); os.close(err_w)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    open_fds = set(bufs)
    truncated = timed_out = False
    deadline = started + wall
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(list(open_fds), [], [], left)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                os.close(fd)
                open_fds.discard(fd)
                continue
            room = cap - len(bufs[fd])
            if len(chunk) > room:
                truncated = True
            bufs[fd] += chunk[:max(room, 0)]
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    _, raw = os.waitpid(pid, 0)
    for fd in open_fds:
        os.close(fd)
    out, err = bufs[out_r], bufs[err_r]
    code_ = os.waitstatus_to_exitcode(raw)
    return {"stdout": bytes(out).decode("utf-8", "replace"),
            "stderr": bytes(err).decode("utf-8", "replace"),
            "returncode": code_, "timed_out": timed_out, "truncated": truncated,
            "duration_s": time.monotonic() - started}

spec = json.loads(sys.stdin.read())
results = [run_one(c, i, spec["wall"], spec["cpu"], spec["cap"])
           for i, c in enumerate(spec["programs"])]
sys.stdout.write("\n" + spec["nonce"] + json.dumps(results) + "\n")
"""


def _result(item: dict[str, object]) -> ExecResult:
    code = item["returncode"]
    assert isinstance(code, int)
    if item["timed_out"]:
        status = "timeout"
    elif code < 0:
        status = "killed"
    else:
        status = "ok" if code == 0 else "error"
    return ExecResult(
        ok=status == "ok",
        stdout=str(item["stdout"]),
        stderr=str(item["stderr"]),
        returncode=code,
        status=status,
        duration_s=float(item["duration_s"]),  # type: ignore[arg-type]
        truncated=bool(item["truncated"]),
    )


def batch_limits(limits: SandboxLimits, n: int) -> SandboxLimits:
    """Limits of the whole batch: time and output scale with the number of programs."""
    return limits.model_copy(
        update={
            "wall_time_s": limits.wall_time_s * n + 2.0,
            "cpu_time_s": (limits.cpu_time_s + 1) * n + 2,
            "max_output_bytes": (2 * limits.max_output_bytes + 512) * n + 4096,
        }
    )


async def run_batch(sandbox: Sandbox, programs: list[str]) -> list[ExecResult]:
    """One ``ExecResult`` per program, in order, as if each had run alone in ``sandbox``."""
    if len(programs) <= 1:
        return [await sandbox.run(p) for p in programs]
    limits = sandbox.limits
    outer = Sandbox(batch_limits(limits, len(programs)), work_root=sandbox._work_root)
    nonce = f"__MATHSYNTH_BATCH_{secrets.token_hex(16)}__"
    spec = {
        "programs": programs,
        "wall": limits.wall_time_s,
        "cpu": limits.cpu_time_s,
        "cap": limits.max_output_bytes,
        "nonce": nonce,
    }
    done = await outer.run(RUNNER, stdin=json.dumps(spec))
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(nonce)), None)
    try:
        items = json.loads(line[len(nonce) :]) if line is not None else None
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list) or len(items) != len(programs):
        return [await sandbox.run(p) for p in programs]  # the runner was disturbed
    return [_result(item) for item in items]


class BatchingExecutor:
    """Collects programs from many concurrent callers (seeds) into shared batches.

    A caller's programs join the open batch; the batch is sent when it holds ``max_batch``
    programs or ``linger_s`` after its first program arrived, at most ``slots`` batches at once.
    Each caller gets back exactly its own results, in order. Cancelling a caller does not affect
    the others in its batch.

    ``load()``: programs ``queued`` (in the open batch or in a batch waiting for a slot) and
    ``running`` (in a batch holding a slot), the number of ``slots``, and ``busy_s``, the
    slot-seconds used so far (its growth per second over ``slots`` is how busy they are).
    """

    def __init__(
        self, sandbox: Sandbox, slots: int = 2, max_batch: int = 64, linger_s: float = 0.05
    ) -> None:
        self.sandbox = sandbox
        self.slots = asyncio.Semaphore(slots)
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._open: list[tuple[list[str], asyncio.Future[list[ExecResult]]]] = []
        self._open_size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.n_slots = slots
        self.queued = 0
        self.running = 0
        self._batches = 0  # batches holding a slot
        self._busy_s = 0.0  # slot-seconds up to ``_mark``
        self._mark = time.monotonic()

    def load(self) -> dict[str, float]:
        """What the executor is doing now (class doc)."""
        busy = self._busy_s + self._batches * (time.monotonic() - self._mark)
        return {"queued": self.queued, "running": self.running, "slots": self.n_slots,
                "busy_s": round(busy, 3)}  # fmt: skip

    def _holding(self, delta: int) -> None:
        now = time.monotonic()
        self._busy_s += self._batches * (now - self._mark)
        self._mark, self._batches = now, self._batches + delta

    async def run(self, programs: list[str]) -> list[ExecResult]:
        if not programs:
            return []
        future: asyncio.Future[list[ExecResult]] = asyncio.get_running_loop().create_future()
        self._open.append((programs, future))
        self._open_size += len(programs)
        self.queued += len(programs)
        if self._open_size >= self.max_batch:
            self._send()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger_s, self._send)
        return await future

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._open, self._open_size = self._open, [], 0
        if batch:
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(
        self, batch: list[tuple[list[str], asyncio.Future[list[ExecResult]]]]
    ) -> None:
        waiting = sum(len(p) for p, _ in batch)
        try:
            async with self.slots:
                self.queued -= waiting
                waiting = 0
                # callers cancelled while the batch waited for its slot cost nothing
                live = [(p, f) for p, f in batch if not f.done()]
                programs = [prog for p, _ in live for prog in p]
                self.running += len(programs)
                self._holding(+1)
                try:
                    results = await run_batch(self.sandbox, programs)
                finally:
                    self.running -= len(programs)
                    self._holding(-1)
        except BaseException as err:  # hand the failure to every waiting caller
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            raise
        finally:
            self.queued -= waiting  # cancelled before it had a slot
        start = 0
        for programs, future in live:
            if not future.done():
                future.set_result(results[start : start + len(programs)])
            start += len(programs)
