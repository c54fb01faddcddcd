"""cluster.yaml (AWS) and cluster-onprem.yaml (provider `local`) pass Ray's own cluster-config
validation (what `ray up` runs), a typo in them would not, and both start every node with
token authentication."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [ROOT / "cluster.yaml", ROOT / "cluster-onprem.yaml"]


def check(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_and_every_node_uses_token_auth(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    prepared = check(config)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in prepared[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts), key
    head_start = " ".join(prepared["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start  # reached through `ray dashboard` only
    assert prepared["file_mounts"] == {"~/.ray/auth_token": "~/.ray/auth_token"}
    assert any("mathsynth" in c for c in prepared["setup_commands"])


def test_aws_groups_autoscale_and_gpu_nodes_get_vllm() -> None:
    prepared = check(yaml.safe_load(CONFIGS[0].read_text()))
    types = prepared["available_node_types"]
    assert types["gpu_teacher"]["resources"] == {"teacher": 1}  # teacher actors' nodes
    # a node type's worker_setup_commands replace the global ones on its nodes (Ray's
    # autoscaler), so the GPU group must install the sandbox and mathsynth itself
    gpu_setup = " ".join(types["gpu_teacher"]["worker_setup_commands"])
    assert "mathsynth[vllm]" in gpu_setup and "bubblewrap" in gpu_setup
    assert "bubblewrap" in " ".join(prepared["worker_setup_commands"])  # cpu_worker
    for name in ("gpu_teacher", "cpu_worker"):
        assert 0 <= types[name]["min_workers"] <= types[name]["max_workers"]


def test_onprem_lists_its_machines() -> None:
    prepared = check(yaml.safe_load(CONFIGS[1].read_text()))
    assert prepared["provider"]["type"] == "local"
    (node_type,) = prepared["available_node_types"].values()
    assert node_type["max_workers"] == len(prepared["provider"]["worker_ips"])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_typo_fails_validation(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    config["setup_comands"] = config.pop("setup_commands")
    with pytest.raises(jsonschema.ValidationError):
        check(config)


def test_a_typo_in_a_node_type_fails_validation() -> None:
    config = yaml.safe_load(CONFIGS[0].read_text())
    config["available_node_types"]["cpu_worker"]["max_wokers"] = 3
    with pytest.raises(jsonschema.ValidationError):
        check(config)
