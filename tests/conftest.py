"""Shared test fixtures: a real local Ray on loopback, the shared data sets, a scripted teacher.

Ray binds to 127.0.0.1 only (never the machine's interface address), and it is started once per
session with 2 CPUs and stopped through ``ray.shutdown`` by this process (never ``ray stop``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("RAY_ADDRESS", None)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = ROOT.parent / "shared" / "data"


def shared_data_dir() -> Path | None:
    path = Path(os.environ.get("MATHSYNTH_SHARED_DATA", DEFAULT_SHARED))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data sets not found: set MATHSYNTH_SHARED_DATA to ../shared/data")
    return path


@pytest.fixture(scope="session")
def gsm8k_train(shared_data: Path) -> Path:
    path = shared_data / "gsm8k" / "train.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    import ray

    # address="local": always a new Ray of our own, even if another Ray on this machine left
    # /tmp/ray/ray_current_cluster behind (ray.init() would join that one instead).
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
        logging_level="WARNING", log_to_driver=False,
    )  # fmt: skip
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`datasets` caches a local directory by its *name* (every test's output dir is "out"),
    so each test gets its own cache: a test must never read another test's dataset."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


@pytest.fixture
def seeds(gsm8k_train: Path) -> list:
    """Ten GSM8K train seeds (the end-to-end tests' input)."""
    from orchestrator.core.seeds import load_seeds
    from tests.support import configs

    return load_seeds(str(gsm8k_train), configs.make_config("http://x").seeds, limit=10)
