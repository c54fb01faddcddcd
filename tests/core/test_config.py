from pathlib import Path

import pytest

from orchestrator.cli.app import build_config
from orchestrator.core.config import ConfigError, load_pipeline
from orchestrator.core.resources import builtin_pipelines, resolve_pipeline


def test_builtin_tinygsm_pipeline_validates() -> None:
    assert "tinygsm" in builtin_pipelines()
    cfg = load_pipeline(resolve_pipeline("tinygsm"), {"teacher": {"model": "m"}})
    assert cfg.tinygsm.method == "one-step"
    assert cfg.tinygsm.problems_per_seed == 10


def test_unknown_key_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\nteacher:\n  model: m\nrun:\n  workers: 2\n  wrokers: 3\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(bad)
    assert f"{bad}:6: run.wrokers" in str(err.value)


def test_bad_value_error_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\nteacher:\n  model: m\ntinygsm:\n  method: three-step\n")
    with pytest.raises(ConfigError, match=rf"{bad}:5: tinygsm.method"):
        load_pipeline(bad)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("name: x\nrun: [1, 2\n")
    with pytest.raises(ConfigError, match=rf"{bad}:\d+: invalid YAML"):
        load_pipeline(bad)


def test_cli_overrides_and_teacher_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    cfg, builtin = build_config("tinygsm", {"run": {"workers": 5}})
    assert builtin and cfg.run.workers == 5
    cfg, builtin = build_config("tinygsm", {"teacher": {"model": "gpt-x"}})
    assert not builtin and cfg.teacher.model == "gpt-x"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="needs a model"):
        build_config("tinygsm", {})
