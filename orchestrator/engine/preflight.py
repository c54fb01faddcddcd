"""Before a run of a user-written method: can a Ray worker import it?

Generation workers find the method again from ``kind`` (``config_from_json``), in their own
processes, possibly on other nodes. A method the driver imported from a directory the workers
do not see would otherwise surface as workers dying in their constructor, restarted until the
run gives up. ``workers_load_method``, once the caller's Ray is up (the CLI starts it in the
background, ``RayStart``, and joins it before this check), sends one zero-CPU task that loads
``kind`` the way a worker does, and raises ``MethodError`` with what to do if it fails.
Built-in methods are not checked. The check is best effort: one node is asked, and a task that
is not scheduled within ``PROBE_TIMEOUT_S`` is not waited for. This module does not start Ray
or workers, or run the pipeline.
"""

from __future__ import annotations

import ray

from orchestrator.core.config import PipelineConfig
from orchestrator.methods.catalog import BUILTINS, MethodError, load_method

PROBE_TIMEOUT_S = 60.0
HINT = (
    "on a cluster, ship the module with the job (runtime_env working_dir or py_modules; "
    "`mathsynth submit` sends its working directory) or install its package on every node"
)


@ray.remote(num_cpus=0, max_retries=0)
def _load_in_worker(kind: str, python_path: list[str]) -> str | None:
    try:
        load_method(kind, python_path)
    except MethodError as err:
        return str(err)
    return None


def workers_load_method(cfg: PipelineConfig) -> None:
    """Raise ``MethodError`` unless a Ray worker loads ``cfg.kind`` (Ray is up)."""
    if cfg.kind in BUILTINS:
        return
    resources = cfg.run.worker_resources or None
    probe = _load_in_worker.options(resources=resources).remote(cfg.kind, cfg.python_path)
    ready, _ = ray.wait([probe], timeout=PROBE_TIMEOUT_S)
    error = ray.get(ready[0]) if ready else None
    if error is not None:
        raise MethodError(f"Ray workers cannot load kind {cfg.kind!r}: {error}; {HINT}")
