"""``orchestrator.engine.capacity`` on the session Ray (2 CPUs, one node): workers are sized to
what the cluster has, and a worker no node can hold is an error saying what exists."""

from __future__ import annotations

import time

import pytest
import ray

from orchestrator.engine.capacity import CapacityError, size_workers
from tests.support.held_cpu import one_cpu_held

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture(autouse=True)
def idle_cluster() -> None:
    """Both CPUs free (actors of earlier tests release theirs shortly after being killed)."""
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)


def test_more_workers_than_fit_are_cut_to_what_fits() -> None:
    assert size_workers(2, {"num_cpus": 1}) == (2, None)
    n, note = size_workers(5, {"num_cpus": 1})
    assert n == 2 and note is not None
    assert "--workers 5 asked, but this Ray cluster has room for 2" in note and "CPU 2" in note
    assert size_workers(2, {"num_cpus": 0.5})[0] == 2
    assert size_workers(9, {"num_cpus": 0.5})[0] == 4


def test_teacher_replicas_hold_their_share_first() -> None:
    assert size_workers(2, {"num_cpus": 1}, reserved={"CPU": 1})[0] == 1
    with pytest.raises(CapacityError, match="teacher replicas hold CPU 2"):
        size_workers(2, {"num_cpus": 1}, reserved={"CPU": 2})


def test_a_resource_no_node_has_is_an_error() -> None:
    with pytest.raises(CapacityError) as info:
        size_workers(2, {"num_cpus": 1, "resources": {"worker": 1}})
    assert "asks for CPU 1, worker 1" in str(info.value) and "cluster: CPU 2" in str(info.value)


def test_what_other_actors_hold_is_left_to_them() -> None:
    with one_cpu_held():
        n, note = size_workers(2, {"num_cpus": 1})
    assert n == 1 and note is not None and "free now: CPU 1" in note
