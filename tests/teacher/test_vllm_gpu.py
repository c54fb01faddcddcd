"""One real vLLM replica on a real GPU, driven through a short TinyGSM run.

Runs only where a GPU (``nvidia-smi``), vLLM (``pip install 'mathsynth[vllm]'``) and a small
model (``MATHSYNTH_VLLM_TEST_MODEL``: a hub id already in the local cache, or a local path; e.g.
``Qwen/Qwen2.5-0.5B-Instruct``) are all present; otherwise it is skipped and the reason says
which one is missing (``pytest -rs`` prints it; the project's pytest options include ``-rs``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from orchestrator.cli.app import build_config
from orchestrator.core.seeds import load_seeds
from orchestrator.engine.driver import run_job


def missing() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return "no GPU here (nvidia-smi not found)"
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed: pip install 'mathsynth[vllm]'"
    if not os.environ.get("MATHSYNTH_VLLM_TEST_MODEL"):
        return "set MATHSYNTH_VLLM_TEST_MODEL to a small model (local path or cached hub id)"
    return None


REASON = missing()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(REASON is not None, reason=f"vLLM GPU test skipped: {REASON}"),
    pytest.mark.timeout(1200),
]


@pytest.mark.usefixtures("ray_local")
def test_one_vllm_replica_serves_a_short_run(tmp_path: Path) -> None:
    overrides = {
        "teacher": {
            "kind": "vllm", "model": os.environ.get("MATHSYNTH_VLLM_TEST_MODEL"), "replicas": 1,
            "engine_args": {"max_model_len": 4096, "gpu_memory_utilization": 0.5},
            "replica": {"num_cpus": 0},  # the test Ray has 2 CPUs for the workers
        },
        "run": {"workers": 1, "concurrency": 8, "commit_every_seeds": 4},
        "tinygsm": {"method": "two-step", "problems_per_seed": 2,
                    "two_step_families": ["variants"],
                    "sampling": {"max_tokens": 512}, "program_sampling": {"max_tokens": 512}},
        "decontamination": {"enabled": False},
    }  # fmt: skip
    cfg, _ = build_config("tinygsm", overrides)
    seeds = load_seeds("demo.jsonl", cfg.seeds, 4)
    summary = run_job(cfg, seeds, tmp_path / "out")
    assert summary["seeds_failed"] == 0 and summary["seeds_not_run"] == 0
    assert summary["requests"] > 0 and summary["completion_tokens"] > 0
    (replica,) = summary["teacher_replicas"]["replicas"]
    assert replica["phase"] == "healthy" and replica["restarts"] == 0
