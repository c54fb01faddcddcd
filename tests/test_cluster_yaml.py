"""cluster.yaml passes Ray's own cluster-config validation (what `ray up` runs), and a typo in
it would not."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parent.parent / "cluster.yaml"


def check(config: dict) -> None:
    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_is_a_valid_ray_cluster_config() -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    check(config)
    types = config["available_node_types"]
    assert types["gpu_teacher"]["resources"] == {"teacher": 1}  # teacher actors' nodes
    assert any("RAY_AUTH_MODE=token" in c for c in config["head_start_ray_commands"])


def test_a_typo_fails_validation() -> None:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    config["available_node_types"]["cpu_worker"]["max_wokers"] = 3
    with pytest.raises(jsonschema.ValidationError):
        check(config)
