"""The named metrics hub, its gauges and the per-actor state, on a real local Ray (no
dashboard: ``ray.util.metrics`` and the state API must degrade cleanly)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import ray

from orchestrator.telemetry.actor_state import ClusterState
from orchestrator.telemetry.metrics import NAMESPACE, CountingSemaphore, hub_name, start_hub

pytestmark = pytest.mark.usefixtures("ray_local")


def test_hub_is_named_per_output_dir_and_sums_pushes(tmp_path: Path) -> None:
    hub = start_hub(tmp_path / "out")  # exports through ray.util.metrics: a no-op here
    try:
        found = ray.get_actor(hub_name(tmp_path / "out"), namespace=NAMESPACE)
        assert found._actor_id == hub._actor_id
        assert hub_name(tmp_path / "out") != hub_name(tmp_path / "other")
        ray.get([
            found.push.remote("w0", {"execute": {"seen": 3, "dropped:timeout": 1}},
                              {"in_flight": 2, "waiting": 1, "node": "127.0.0.1",
                               "replicas": {"http://a/v1": 2}}),
            found.push.remote("w1", {"execute": {"seen": 2}},
                              {"in_flight": 5, "waiting": 0, "replicas": {"http://a/v1": 1,
                                                                          "http://b/v1": 4}},
                              [{"question": "q", "answer": "1"}],
                              [{"kind": "timeout", "message": "read timed out"}]),
        ])  # fmt: skip
        snap = ray.get(hub.snapshot.remote())
    finally:
        ray.kill(hub)
    assert snap["counters"]["execute"] == {"seen": 5, "dropped:timeout": 1}
    assert snap["gauges"] == {
        "in_flight": 7, "waiting": 1, "replicas": {"http://a/v1": 3, "http://b/v1": 4}
    }  # fmt: skip
    assert set(snap["last_push_s"]) == {"w0", "w1"} and max(snap["last_push_s"].values()) < 5
    assert snap["errors"][0]["kind"] == "timeout" and snap["errors"][0]["worker"] == "w1"
    assert snap["recent"] == [{"question": "q", "answer": "1"}]


def test_a_live_hub_keeps_its_name(tmp_path: Path) -> None:
    hub = start_hub(tmp_path)
    try:
        ray.get(hub.snapshot.remote())
        with pytest.raises(ValueError):
            start_hub(tmp_path, wait_s=0.5)  # another driver writing into the same dir
    finally:
        ray.kill(hub)
    again = start_hub(tmp_path)  # the name is free once the old hub is gone
    assert ray.get(again.snapshot.remote())["counters"] == {}
    ray.kill(again)


def test_counting_semaphore_counts_waiters() -> None:
    async def main() -> list[int]:
        slots = CountingSemaphore(1)
        seen = []
        async with slots:
            waiters = [asyncio.ensure_future(slots.acquire()) for _ in range(3)]
            await asyncio.sleep(0.01)
            seen.append(slots.waiting)
        await asyncio.sleep(0.01)
        seen.append(slots.waiting)  # one got the slot
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        seen.append(slots.waiting)
        return seen

    assert asyncio.run(main()) == [3, 2, 0]


@ray.remote(num_cpus=0)
class Idle:
    def ping(self) -> int:
        return 1


def test_actor_state_without_dashboard_falls_back_to_push_age() -> None:
    actors = {"worker-0": Idle.remote(), "worker-1": Idle.remote(), "worker-2": Idle.remote()}
    ray.get([a.ping.remote() for a in actors.values()])
    state = ClusterState(actors, every_s=0)
    assert state.address is None  # no dashboard in this cluster: no state API
    rows, nodes = state.poll({"worker-0": 0.5, "worker-1": 42.0}, {"worker-0": {"in_flight": 3,
                             "node": "127.0.0.1"}})  # fmt: skip
    by_name = {row["name"]: row for row in rows}
    assert by_name["worker-0"]["state"] == "alive" and by_name["worker-0"]["in_flight"] == 3
    assert by_name["worker-1"]["state"] == "silent"
    assert by_name["worker-2"]["state"] == "starting"
    assert nodes == [{"node": "127.0.0.1", "state": "alive", "actors": 1}]
    # what the driver saw (a task failed with the worker's death) outranks the push age
    rows, nodes = state.poll({"worker-0": 0.5, "worker-1": 0.5}, {},
                             {"worker-0": "restarting", "worker-2": "dead"},
                             {"worker-0": 1, "worker-1": 2, "worker-2": 4})  # fmt: skip
    by_name = {row["name"]: (row["state"], row["source"], row["restarts"]) for row in rows}
    assert by_name == {"worker-0": ("restarting", "driver", 1), "worker-1": ("alive", "push", 2),
                       "worker-2": ("dead", "driver", 4)}  # fmt: skip
    for actor in actors.values():
        ray.kill(actor)
