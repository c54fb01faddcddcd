"""Faults mid-run: a worker node removed from a cluster, a worker process killed, the driver
killed. Each run must end with every seed committed exactly once (counted in the commits'
own ledgers), unique row ids and questions, no orphan files, and no new teacher request for a
seed that was already committed (counted by prompt content at the scripted server).

The node-loss run needs its own multi-node cluster, so it runs in a child process
(``tests/support/cluster_job.py``); the worker kill runs on the session Ray; the driver kill
runs ``mathsynth run`` as a subprocess and SIGKILLs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import yaml
from ray.exceptions import RayActorError

from orchestrator.core.records import Record
from orchestrator.core.resources import data_dir
from orchestrator.engine.driver import run_job
from orchestrator.engine.finalize import Finalizer
from orchestrator.engine.recovery import WorkerHealth, recover
from orchestrator.output.store import Commit, OutputStore
from tests.support.faults import (
    alive_workers,
    audit,
    job_config,
    kill_worker,
    logged_seeds,
    requests_per_seed,
    run_cluster_job,
    synthetic_seeds,
    wait_for_shards,
)
from tests.support.scripted_server import ScriptedServer
from tests.support.tinygsm_teacher import tinygsm_reply

ROOT = Path(__file__).resolve().parents[2]
RUN = {"workers": 2, "concurrency": 2, "commit_every_seeds": 2}


def assert_exactly_once(out: Path, seed_ids: list[str]) -> None:
    found = audit(out)
    assert found.exactly_once(seed_ids), {k: v for k, v in found.seed_commits.items() if v != 1}
    assert set(found.row_ids.values()) == {1}, "a row was written twice"
    assert set(found.questions.values()) == {1}, "a question was written twice"
    assert not found.orphan_rejected
    assert not list((out / "_mathsynth" / "tmp").glob("*.tmp"))


def assert_rerun_costs_nothing(
    out: Path, seeds: list, srv: ScriptedServer, decontamination: dict | None = None
) -> None:
    before = srv.request_count
    summary = run_job(job_config(srv.base_url, RUN, decontamination), seeds, out)
    assert srv.request_count == before
    assert summary["seeds_skipped_already_finished"] == len(seeds)
    assert_exactly_once(out, [s.id for s in seeds])


def test_requeued_chunk_skips_seeds_a_dead_worker_already_committed(tmp_path: Path) -> None:
    """A worker can die between its commit's rename and its reply: those seeds are done, and
    the candidate commit the driver never got goes to the finalizer from storage."""
    store = OutputStore(tmp_path / "out")
    store.prepare()
    seeds = synthetic_seeds(4)
    row = Record(id="r0", seed_id=seeds[0].id, question="A row of seed 0 with 3 apples?")
    cid, _ = store.write_candidates(
        Commit(seeds={seeds[0].id: "accepted", seeds[1].id: "failed"}, rows=[row])
    )
    chunk = [s.to_dict() for s in seeds]
    finalizer = Finalizer(store, job_config("http://x", RUN), [s.id for s in seeds])
    assert recover(chunk, store, finalizer) == chunk[2:]
    assert finalizer.known(cid)
    assert finalizer.advance() == 2 and [r["id"] for r in finalizer.batch.rows] == ["r0"]


def test_recovery_reruns_a_seed_whose_failed_attempt_is_an_earlier_runs_commit(
    tmp_path: Path,
) -> None:
    """A commit the finalizer already holds (here: an earlier run's, whose failed seed is
    retried in this chunk) is not the dead worker's: its failed seed runs again."""
    store = OutputStore(tmp_path / "out")
    store.prepare()
    seeds = synthetic_seeds(3)
    cid, _ = store.write_candidates(Commit(seeds={seeds[0].id: "failed"}, rows=[]))
    finalizer = Finalizer(store, job_config("http://x", RUN), [s.id for s in seeds])
    ledger = store.read_ledger(with_questions=False)
    finalizer.add(cid, ledger.candidates[cid], [], ledger.failures)  # as the driver does at start
    chunk = [s.to_dict() for s in seeds]
    assert recover(chunk, store, finalizer) == chunk


@ray.remote(num_cpus=0, max_restarts=1)
class Pingable:
    def ping(self) -> int:
        return os.getpid()


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("ray_local")
def test_worker_health_waits_for_a_restart_and_gives_up_on_a_dead_worker() -> None:
    back, gone, alive = (Pingable.remote() for _ in range(3))  # type: ignore[attr-defined]
    first_pid = ray.get(back.ping.remote())
    ray.get([gone.ping.remote(), alive.ping.remote()])
    health = WorkerHealth([back, gone, alive])
    # as the driver sees deaths: only after the process is gone (a ray.kill lands later than
    # calls sent after it, and a ping answered by the old process would mean "back")
    os.kill(first_pid, signal.SIGKILL)  # Ray restarts it
    ray.kill(gone, no_restart=True)  # it never comes back
    deadline = time.monotonic() + 30
    while True:  # the kill goes round through the GCS: a ping may still beat it
        try:
            ray.get(gone.ping.remote(), timeout=30)
        except RayActorError:
            break
        assert time.monotonic() < deadline, "ray.kill never landed"
        time.sleep(0.05)
    health.died(0, health.incarnation(0))
    health.died(1, health.incarnation(1))
    assert health.states() == {0: "restarting", 1: "restarting"}  # what the dashboard shows
    assert 1 not in health.usable()  # no chunk for a worker that has not answered yet
    health.died(0, 0)  # its other chunk failing too: the same death
    assert health.deaths == {0: 1, 1: 1}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and (health.usable() != [0, 2] or 1 not in health.lost):
        time.sleep(0.1)
    assert health.usable() == [0, 2] and health.lost == {1} and not health.all_lost()
    assert health.states() == {1: "dead"}
    health.died(0, 0)  # a late failure of the first incarnation: still the same death
    assert health.deaths[0] == 1 and 0 in health.usable()
    health.died(0, health.incarnation(0))  # a task of the restarted incarnation: a new death
    assert health.deaths[0] == 2 and health.states() == {0: "restarting", 1: "dead"}
    assert ray.get(back.ping.remote()) != first_pid  # a new process


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("ray_local")
def test_worker_node_removed_mid_run(tmp_path: Path) -> None:
    n_seeds, out = 64, tmp_path / "out"
    seeds = synthetic_seeds(n_seeds)
    worker_node = {"num_cpus": 1, "resources": {"worker": 1}}
    with ScriptedServer(reply=tinygsm_reply, latency=0.5) as srv:
        result = run_cluster_job({
            "base_url": srv.base_url, "out": str(out), "n_seeds": n_seeds,
            "head": {"num_cpus": 1},  # driver + job-state actors; no `worker` resource
            "nodes": [worker_node, worker_node, worker_node],  # 2 workers + 1 spare node
            "run": {**RUN, "worker_resources": {"worker": 1}},
            "fault": "remove_node", "after_shards": 2,
        }, tmp_path)  # fmt: skip
        per_seed = requests_per_seed(srv.requests, seeds)
        removed, summary = result["removed_node"], result["summary"]
        print(f"workers restored {result.get('restored_after_s')} s after the fault")
        assert removed in {node for _, node in result["workers_at_fault"]}
        assert summary["chunks_requeued"] >= 1  # the removed node's chunks were lost...
        assert summary["seeds_not_run"] == 0 and summary["seeds_failed"] == 0  # ...and redone
        spare = set(result["nodes"].values()) - {result["nodes"]["head"], removed}
        spare -= {node for _, node in result["workers_at_fault"]}
        assert spare & set(summary["chunks_by_node"]), "the worker did not restart elsewhere"
        assert_exactly_once(out, [s.id for s in seeds])
        # committed before the node went: never asked again; lost in flight: asked once more
        committed = set(result["committed_before_fault"])
        assert committed and all(per_seed[s] == 1 for s in committed)
        assert set(per_seed) == {s.id for s in seeds} and max(per_seed.values()) <= 2
        assert_rerun_costs_nothing(out, seeds, srv)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_local")
def test_worker_process_killed_mid_run(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    n_seeds, out = 24, tmp_path / "out"
    seeds = synthetic_seeds(n_seeds)
    bench = tmp_path / "bench.jsonl"  # a local benchmark: the restarted worker needs its index
    bench.write_text(json.dumps({"id": "b0", "question": "A train leaves at noon at 60 mph."}))
    decontam = {"enabled": True, "preset": "tinygsm",
                "benchmarks": [{"path": str(bench), "name": "bench"}]}  # fmt: skip
    report: dict = {}

    def kill_one() -> None:
        if wait_for_shards(out, 2, timeout=60):
            report["committed"] = set(OutputStore(out).read_ledger().outcomes)
            before = alive_workers()
            kill_worker(before[0][0])
            report["killed"] = before[0][0]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # Ray restarts it in a new process
                now = alive_workers()
                if len(now) == len(before) and before[0][0] not in {pid for pid, _ in now}:
                    report["restarted"] = True
                    break
                time.sleep(0.1)

    with ScriptedServer(reply=tinygsm_reply, latency=0.5) as srv:
        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        views: list[dict] = []
        summary = run_job(
            job_config(srv.base_url, RUN, decontam), seeds, out, poll_s=0.2,
            on_progress=views.append,
        )  # fmt: skip
        states = [{a["name"]: (a["state"], a["source"]) for a in v["actors"]} for v in views]
        killer.join(timeout=5)
        assert "killed" in report, "the run ended before a worker could be killed"
        assert report.get("restarted"), "the killed worker was not restarted"
        # the dashboard counted the death once (no Ray dashboard here: the driver saw it; a
        # restart can be quicker than a poll, so `restarting` itself may never be on screen)
        # and the other worker stayed alive; the killed one is back, or still `restarting` if
        # the run ended before it answered the driver's ping
        final = {a["name"]: a for a in views[-1]["actors"]}
        assert sorted(a["restarts"] for a in final.values()) == [0, 1], final
        states_by_restarts = {a["restarts"]: (a["state"], a["source"]) for a in final.values()}
        assert states_by_restarts[0][0] == "alive", final
        assert states_by_restarts[1] in {("alive", "push"), ("restarting", "driver")}, final
        assert not any(state == "dead" for s in states for state, _ in s.values())
        # workers get only plain constructor arguments (orchestrator.engine.job_directory), so Ray has
        # nothing to warn about for their restarts, and every row passed decontamination
        assert "constructor arguments in the object store" not in capfd.readouterr().err
        assert views[-1]["counters"]["decontam"]["seen"] >= summary["rows_written"] > 0
        assert summary["chunks_requeued"] >= 1
        assert summary["seeds_not_run"] == 0 and summary["seeds_failed"] == 0
        assert_exactly_once(out, [s.id for s in seeds])
        per_seed = requests_per_seed(srv.requests, seeds)
        assert all(per_seed[s] == 1 for s in report["committed"])
        assert set(per_seed) == {s.id for s in seeds} and max(per_seed.values()) <= 2
        assert_rerun_costs_nothing(out, seeds, srv, decontam)


def descendants(pid: int) -> set[int]:
    """Process ids below ``pid`` (read from /proc; this test's own process tree only)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.timeout(180)
def test_driver_killed_then_rerun_resumes(tmp_path: Path) -> None:
    n_seeds, out = 24, tmp_path / "out"
    seeds = synthetic_seeds(n_seeds)
    seed_file = tmp_path / "seeds.jsonl"
    seed_file.write_text(
        "".join(json.dumps({"question": s.question, "answer": s.gold_answer}) + "\n" for s in seeds)
    )
    pipeline = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    pipeline["run"].update(RUN)
    pipeline["tinygsm"].update({"method": "one-step", "problems_per_seed": 6})
    pipeline["decontamination"]["enabled"] = False  # its benchmarks come from the hub
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipeline))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    with ScriptedServer(reply=tinygsm_reply, latency=0.5, model="scripted") as srv:
        cmd = [sys.executable, "-m", "orchestrator", "run", str(tmp_path / "p.yaml"),
               "--seeds", str(seed_file), "--out", str(out), "--base-url", srv.base_url,
               "--model", "scripted", "--no-progress"]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            assert wait_for_shards(out, 2, timeout=90), "no shard committed"
            tree = descendants(proc.pid)  # its local Ray: GCS, raylet, workers
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        # Ray's core processes share the driver's fate; its dashboard and runtime-env agents
        # can linger after a SIGKILL (seen: > 30 s), so whatever is left is ended by id
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in tree):
            time.sleep(0.2)
        for pid in tree:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        ledger = OutputStore(out).read_ledger()
        finished, first = ledger.finished, len(srv.requests)
        assert 0 < len(finished) < n_seeds, "the driver was not killed mid-run"
        answered = logged_seeds(out)  # replies on disk, committed or not
        assert answered >= finished
        rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=120)  # fmt: skip
        assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
        again = requests_per_seed(srv.requests[first:], seeds)
    assert not set(again) & answered, "an answered request was sent again"
    assert set(again) == {s.id for s in seeds} - answered and set(again.values()) <= {1}
    assert_exactly_once(out, [s.id for s in seeds])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds_skipped_already_finished"] == len(finished)
    assert summary["seeds_not_run"] == 0 and summary["seeds_failed"] == 0
