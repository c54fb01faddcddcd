"""The TinyGSM test configuration against a scripted teacher, shared by the end-to-end tests
of several packages (the ten-seed ``seeds`` fixture is in ``tests/conftest.py``)."""

from __future__ import annotations

from typing import Any

from orchestrator.cli.app import build_config
from orchestrator.core.config import PipelineConfig


def make_config(base_url: str, **tinygsm: Any) -> PipelineConfig:
    overrides = {
        "teacher": {"base_url": base_url, "model": "scripted", "max_attempts": 4,
                    "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "read_timeout_s": 5},
        "run": {"workers": 2, "concurrency": 4, "commit_every_seeds": 3, "final_commit_rows": 5},
        "tinygsm": {"problems_per_seed": 6, **tinygsm},
        "decontamination": {"enabled": False},  # its benchmarks come from the hub
    }  # fmt: skip
    cfg, builtin = build_config("tinygsm", overrides)
    assert not builtin
    return cfg
