"""Placement on a simulated 3-node Ray cluster (run in a child process: ``cluster_job.py``).

Two CPU nodes (the head and node0) offer a ``worker`` resource; node1 offers one GPU and the
``teacher`` resource (a teacher node). With ``run.worker_resources: {worker: 1}`` the
generation workers spread over the CPU nodes, shards are served by both, none runs on the
teacher node, and an actor placed as a teacher replica asking for the GPU and ``teacher``
(``replica_placement``) gets the teacher node while the workers run. Every seed ends in the
output exactly once, at one teacher request each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.config import RunConfig
from orchestrator.engine.placement import worker_options
from tests.support.faults import audit, requests_per_seed, run_cluster_job, synthetic_seeds
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply


def test_worker_options_ask_for_cpus_and_custom_resources_only() -> None:
    options = worker_options(RunConfig(worker_cpus=2, worker_resources={"worker": 1}))
    assert options == {
        "num_cpus": 2, "num_gpus": 0, "resources": {"worker": 1}, "scheduling_strategy": "SPREAD"
    }  # fmt: skip
    assert "resources" not in worker_options(RunConfig(spread_workers=False))


@pytest.mark.timeout(180)
def test_shards_spread_over_cpu_nodes_and_teacher_node_stays_free(tmp_path: Path) -> None:
    n_seeds = 16
    seeds = synthetic_seeds(n_seeds)
    with ScriptedServer(reply=tinygsm_reply, latency=0.3) as srv:
        result = run_cluster_job({
            "base_url": srv.base_url, "out": str(tmp_path / "out"), "n_seeds": n_seeds,
            "head": {"num_cpus": 1, "resources": {"worker": 1}},
            "nodes": [{"num_cpus": 1, "resources": {"worker": 1}},
                      {"num_cpus": 1, "num_gpus": 1, "resources": {"teacher": 1}}],
            "run": {"workers": 2, "concurrency": 2, "commit_every_seeds": 2,
                    "max_chunk_seeds": 2, "worker_resources": {"worker": 1}},
            "fault": "teacher_probe", "after_shards": 1,
        }, tmp_path)  # fmt: skip
        bodies = srv.requests
    nodes, summary = result["nodes"], result["summary"]
    assert len(set(nodes.values())) == 3
    served = summary["chunks_by_node"]
    assert nodes["node1"] not in served, "a worker ran on the teacher node"
    assert result["probe_node"] == nodes["node1"]  # the GPU + `teacher` were free mid-run
    assert len(served) >= 2, f"shards served by one node only: {served}"
    assert sum(served.values()) == n_seeds // 2  # chunks of 2 (pinned): each once, none requeued
    assert summary["chunks_requeued"] == 0
    # every seed exactly once, rows and questions unique, one teacher request per seed
    found = audit(tmp_path / "out")
    assert found.exactly_once([s.id for s in seeds])
    assert set(found.row_ids.values()) == {1} and set(found.questions.values()) == {1}
    assert summary["rows_total"] == len(found.row_ids) > 0
    assert requests_per_seed(bodies, seeds) == {s.id: 1 for s in seeds}
