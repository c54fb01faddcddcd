"""Run one job on a simulated multi-node Ray cluster, in its own process; print the result.

``python -m tests.support.cluster_job SPEC.json`` builds a ``ray.cluster_utils.Cluster`` on
127.0.0.1 (a head node with ``spec["head"]`` and the nodes in ``spec["nodes"]``, dicts of
``add_node`` arguments such as ``num_cpus``, ``num_gpus``, ``resources``), runs ``run_job``
over ``synthetic_seeds(n)`` against the scripted teacher at ``spec["base_url"]`` into
``spec["out"]``, and while it runs optionally injects one fault once ``after_shards`` data
shards are committed:

* ``"remove_node"``: removes a non-head node that hosts a generation worker
  (``Cluster.remove_node``: its raylet and every process on it are killed);
* ``"teacher_probe"``: while the workers run, starts a stand-in actor placed exactly as a
  teacher replica with ``replica: {num_gpus: 1, resources: {teacher: 1}}`` is
  (``orchestrator.teacher.replicas.replica_placement``), and reports the node it got.

It prints one line ``RESULT <json>``: the run summary, node ids by role, where workers were
when the fault hit, which seeds were committed before it, how long the removed node's worker
took to be alive again (``restored_after_s``), and the probe's node. It must run in
a child process (the pytest process already holds the session Ray); the cluster is shut down
by this process, never with ``ray stop``. It asserts nothing.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.pop("RAY_ADDRESS", None)

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from orchestrator.engine.driver import run_job  # noqa: E402
from orchestrator.output.store import OutputStore  # noqa: E402
from orchestrator.teacher.replicas import replica_placement  # noqa: E402
from orchestrator.teacher.settings import TeacherSettings  # noqa: E402
from tests.support.faults import (  # noqa: E402
    alive_workers,
    job_config,
    synthetic_seeds,
    wait_for_shards,
)


@ray.remote
class TeacherStandIn:
    """Placed like a vLLM teacher replica (``replica_placement``); only reports its node."""

    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


def inject(spec: dict[str, Any], cluster: Cluster, report: dict[str, Any]) -> None:
    out = Path(spec["out"])
    if not wait_for_shards(out, spec.get("after_shards", 1), timeout=60):
        report["fault_error"] = "no shard committed in time"
        return
    fault = spec["fault"]
    report["workers_at_fault"] = alive_workers()
    report["committed_before_fault"] = sorted(OutputStore(out).read_ledger().outcomes)
    if fault == "remove_node":
        hosts = {node for _, node in report["workers_at_fault"]}
        victim = next(n for n in cluster.worker_nodes if n.node_id in hosts)
        cluster.remove_node(victim)
        report["removed_node"] = victim.node_id
    elif fault == "teacher_probe":
        teacher = TeacherSettings.model_validate(
            {"model": "m", "replica": {"num_gpus": 1, "num_cpus": 0, "resources": {"teacher": 1}}}
        )
        options, _ = replica_placement(teacher)
        probe = TeacherStandIn.options(**options).remote()  # type: ignore[attr-defined]
        report["probe_node"] = ray.get(probe.node.remote(), timeout=30)
        ray.kill(probe)
    report["fault_at"] = time.time()
    if fault == "remove_node":  # how long until every worker is alive again
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            back = alive_workers()
            if len(back) == len(report["workers_at_fault"]) and back != report["workers_at_fault"]:
                report["restored_after_s"] = time.time() - report["fault_at"]
                report["workers_after_fault"] = back
                break
            time.sleep(0.1)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, **spec.get("head", {}), "include_dashboard": False},
    )
    report: dict[str, Any] = {"nodes": {"head": cluster.head_node.node_id}}
    try:
        for i, node_args in enumerate(spec["nodes"]):
            report["nodes"][f"node{i}"] = cluster.add_node(**node_args).node_id
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
        seeds = synthetic_seeds(spec["n_seeds"])
        cfg = job_config(spec["base_url"], spec["run"])
        fault = None
        if spec.get("fault"):
            fault = threading.Thread(target=inject, args=(spec, cluster, report), daemon=True)
            fault.start()
        started = time.time()
        report["summary"] = run_job(cfg, seeds, spec["out"], poll_s=0.2)
        report["elapsed_s"] = time.time() - started
        if fault is not None:
            fault.join(timeout=30)
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("RESULT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
