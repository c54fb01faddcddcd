"""Teacher replicas on CPU: real Ray replica actors, each running a real scripted
OpenAI-compatible server subprocess on 127.0.0.1; requests go over real HTTP through the router.
Failures are real too: server processes are SIGKILLed or SIGSTOPped (hung), actor processes are
killed, and the tests watch Ray restart them."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from orchestrator.teacher.launch import TeacherSetupError, engine_flags, server_command
from orchestrator.teacher.pool import ReplicaPool
from orchestrator.teacher.replicas import TeacherReplica, replica_placement
from orchestrator.teacher.routing import Route, RoutedTeacher, pick_replica
from orchestrator.telemetry.counters import Counters
from tests.support.scripted_server import ScriptedServer
from tests.teacher.replica_support import pid_alive, settings, wait_for

pytestmark = pytest.mark.usefixtures("ray_local")
HAS_VLLM = importlib.util.find_spec("vllm") is not None


async def ask_all(teacher: RoutedTeacher, n: int, concurrency: int) -> list[str]:
    """``n`` distinct prompts, ``concurrency`` at a time; the replies in prompt order."""
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with slots:
            reply = await teacher.chat([{"role": "user", "content": f"prompt {i}"}], max_tokens=50)
            return reply.text

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def state(pool: ReplicaPool, index: int) -> dict[str, Any]:
    return pool.status()[index]


# --------------------------------------------------------------------- pure parts
def test_placement_reserves_gpus_and_custom_resources() -> None:
    s = settings(num_gpus=None, num_cpus=1, resources={"teacher": 1})
    s = s.model_copy(update={"tensor_parallel_size": 2})
    options, bundle = replica_placement(s)
    assert options["num_gpus"] == 2 and options["resources"] == {"teacher": 1}
    assert bundle == {"GPU": 2, "CPU": 1, "teacher": 1}  # one STRICT_PACK bundle
    options, bundle = replica_placement(settings(num_gpus=0, resources={"teacher": 1}))
    assert options["num_gpus"] == 0 and bundle is None
    one_gpu = settings(num_gpus=None).model_copy(update={"tensor_parallel_size": 1})
    assert replica_placement(one_gpu) == (
        {"num_gpus": 1, "num_cpus": 0, "max_restarts": 10, "max_task_retries": 0},
        None,
    )


def test_vllm_command_from_engine_args() -> None:
    assert engine_flags(
        {"max_model_len": 4096, "enforce_eager": True, "enable_prefix_caching": False,
         "limit_mm_per_prompt": {"image": 0}, "dtype": None}
    ) == ["--max-model-len", "4096", "--enforce-eager", "--no-enable-prefix-caching",
          "--limit-mm-per-prompt", '{"image": 0}']  # fmt: skip
    s = settings(launcher=None).model_copy(
        update={"model": "Qwen/Qwen2.5-0.5B-Instruct", "tensor_parallel_size": 2,
                "engine_args": {"gpu_memory_utilization": 0.8}}
    )  # fmt: skip
    if not HAS_VLLM:
        with pytest.raises(TeacherSetupError) as info:
            server_command(s, "127.0.0.1", 8000)
        assert info.value.permanent and "pip install 'mathsynth[vllm]'" in str(info.value)
        return
    cmd = server_command(s, "127.0.0.1", 8000)
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert "--tensor-parallel-size" in cmd and "--distributed-executor-backend" in cmd


def test_pick_is_least_in_flight_then_least_sent() -> None:
    routes = [Route(i, f"u{i}", "x", client=None) for i in range(3)]  # type: ignore[arg-type]
    routes[0].in_flight, routes[1].in_flight, routes[2].in_flight = 3, 1, 1
    routes[1].sent, routes[2].sent = 9, 4
    assert pick_replica(routes, now=0.0) is routes[2]
    routes[2].suspect_until = 10.0  # a replica that just refused a connection is skipped
    assert pick_replica(routes, now=1.0) is routes[1]
    assert pick_replica([routes[2]], now=1.0) is None
    assert pick_replica([routes[2]], now=11.0) is routes[2]


# --------------------------------------------------------------------- routing over HTTP
def test_router_prefers_the_replica_with_fewer_requests_in_flight() -> None:
    """A fast and a slow replica: round robin would split 40 requests 20/20; least in-flight
    sends to the slow one only while it has fewer outstanding."""
    with ScriptedServer(latency=0.02) as fast, ScriptedServer(latency=1.0) as slow:
        teacher = RoutedTeacher(settings(), supervisor=None)
        teacher.refresh([{"index": 0, "url": fast.base_url, "incarnation": "a"},
                         {"index": 1, "url": slow.base_url, "incarnation": "b"}])  # fmt: skip

        async def go() -> list[str]:
            try:
                return await ask_all(teacher, 40, concurrency=8)
            finally:
                await teacher.close()

        replies = asyncio.run(go())
    assert replies == [f"echo: prompt {i}" for i in range(40)]
    assert fast.request_count + slow.request_count == 40
    assert slow.request_count <= 8 < fast.request_count


# --------------------------------------------------------------------- the pool
def test_pool_serves_requests_over_both_replicas() -> None:
    with ReplicaPool(settings(replicas=2, latency=0.2)) as pool:
        pool.wait_ready(2, timeout_s=60)
        assert [s["phase"] for s in pool.status()] == ["healthy", "healthy"]
        teacher = RoutedTeacher(pool.settings, pool.supervisor)
        teacher.counters = Counters()

        async def go() -> list[str]:
            try:
                return await ask_all(teacher, 24, concurrency=8)
            finally:
                await teacher.close()

        assert asyncio.run(go()) == [f"echo: prompt {i}" for i in range(24)]
        sent = teacher.counters.group("teacher_replicas")
        assert sent["sent:replica-0"] >= 8 and sent["sent:replica-1"] >= 8, sent
        urls = {s["url"] for s in pool.status()}
        assert len(urls) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls)


@pytest.mark.parametrize("how", ["server_killed", "actor_killed", "server_hung"])
def test_failed_replica_requests_are_resent_and_it_comes_back(how: str) -> None:
    s = settings(replicas=2, latency=1.0)
    with ReplicaPool(s) as pool:
        pool.wait_ready(2, timeout_s=60)
        before = state(pool, 0)
        teacher = RoutedTeacher(pool.settings, pool.supervisor)

        async def go() -> list[str]:
            job = asyncio.ensure_future(ask_all(teacher, 30, concurrency=10))
            await asyncio.sleep(0.4)  # both replicas hold requests now (1 s each)
            assert sum(r.in_flight for r in teacher.routes()) == 10
            sig = signal.SIGSTOP if how == "server_hung" else signal.SIGKILL
            os.kill(before["actor_pid" if how == "actor_killed" else "server_pid"], sig)
            try:
                return await job
            finally:
                await teacher.close()

        started = time.monotonic()
        replies = asyncio.run(go())
        # none lost, none mixed up: each prompt got its own reply exactly once
        assert replies == [f"echo: prompt {i}" for i in range(30)]
        assert teacher.stats["resends"] >= 1
        # the replica was restarted by Ray and serves again, on a new incarnation
        after = wait_for(
            lambda: (st := state(pool, 0))["phase"] == "healthy"
            and st["incarnation"] != before["incarnation"] and st,
            timeout=60, what="replica 0 to come back",
        )  # fmt: skip
        assert after["restarts"] >= 1
        expected = {"server_killed": "down", "actor_killed": "died"}.get(how)
        if expected is not None:
            assert after["last_failure"] == expected
        else:  # a hung server is detected by failed probes, then killed although stopped
            assert after["last_failure"] in ("unhealthy", "unresponsive")
        assert not pid_alive(before["server_pid"])  # the old server never lingers
        assert state(pool, 1)["restarts"] == 0  # the other one kept working
        assert time.monotonic() - started < 60


def test_missing_vllm_is_reported_with_the_install_command() -> None:
    if HAS_VLLM:
        pytest.skip("vllm is installed here; the missing-vllm message cannot be shown")
    s = settings(launcher=None, num_gpus=0)
    # on the replica's node (what a multi-node cluster sees) ...
    replica = TeacherReplica.options(num_cpus=0).remote(s.model_dump_json(), 0)
    with pytest.raises(TeacherSetupError) as info:
        ray.get(replica.start.remote())
    assert "pip install 'mathsynth[vllm]'" in str(info.value) and "127.0.0.1" in str(info.value)
    ray.kill(replica)
    # ... and up front from the pool on a one-node cluster, before anything is started
    with pytest.raises(TeacherSetupError) as info:
        ReplicaPool(s).start()
    assert info.value.permanent and "pip install 'mathsynth[vllm]'" in str(info.value)


def test_pool_without_enough_gpus_fails_at_once() -> None:
    s = settings(num_gpus=None)  # one GPU per replica; this Ray has none
    started = time.monotonic()
    with pytest.raises(TeacherSetupError) as info:
        ReplicaPool(s).start()
    assert "needs 1 GPU" in str(info.value) and time.monotonic() - started < 10


def test_replica_whose_server_cannot_start_fails_for_good() -> None:
    s = settings(replicas=1, max_restarts=1, extra=["--no-such-flag"])
    with pytest.raises(TeacherSetupError) as info:
        ReplicaPool(s).start(timeout_s=600)
    # argparse's exit code and message, from the last incarnation's own start
    assert "within" not in str(info.value)
    assert "server exited with code 2" in str(info.value) and "--no-such-flag" in str(info.value)


def test_each_incarnation_gets_one_start_after_a_failed_one(tmp_path: Path) -> None:
    """A start sent right after ``ray.kill`` could run in the dying process (calls go straight
    to the actor, the kill goes round through the GCS), whose children Ray kills: that start
    would see its server die (-9) and count against the new incarnation. The supervisor waits
    for a new incarnation first, so every actor process launches exactly one server."""
    starts = tmp_path / "starts"
    script = tmp_path / "fail.py"
    script.write_text(
        "import os, sys\n"
        f"with open({str(starts)!r}, 'a') as f: f.write(f'{{os.getppid()}}\\n')\n"
        "sys.exit(2)\n"
    )
    s = settings(replicas=1, max_restarts=2)
    s.replica.launcher = ["{python}", str(script)]
    with pytest.raises(TeacherSetupError) as info:
        ReplicaPool(s).start(timeout_s=600)  # three actor starts: slow on a loaded machine
    assert "within" not in str(info.value) and "server exited with code 2" in str(info.value)
    actor_pids = starts.read_text().split()
    assert len(actor_pids) == 3 and len(set(actor_pids)) == 3, actor_pids
