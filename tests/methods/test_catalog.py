"""Finding a pipeline's method: built-in, ``module:attr`` through ``python_path``, or an
installed entry point; its section validated like a built-in one (errors name file and line);
and the fingerprint covering its section and templates. No Ray here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.cli.app import build_config
from orchestrator.core.config import ConfigError, load_pipeline
from orchestrator.core.method_config import config_from_json
from orchestrator.methods.catalog import BUILTINS, MethodError, fingerprint, load_method
from tests.support.doubler import install, install_entry_point, pipeline, write_seeds


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The doubler method copied outside the repository; sys.path and the loaded module are
    restored after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "doubler_method", raising=False)
    yield install(tmp_path / "plugins")
    sys.modules.pop("doubler_method", None)


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def doubler_file(tmp_path: Path, kind: str = "doubler_method:METHOD", **changes: object) -> Path:
    """tmp_path/p.yaml naming ``kind``, with ``python_path: [plugins]`` (relative to it)."""
    seeds = write_seeds(tmp_path / "seeds.jsonl")
    return write(tmp_path / "p.yaml", pipeline(kind, seeds, python_path=["plugins"], **changes))


def line_of(path: Path, key: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.startswith(key))


def test_builtins_are_methods_found_by_the_same_import() -> None:
    for kind in BUILTINS:
        assert load_method(kind).name == kind


def test_module_attr_through_python_path_relative_to_the_pipeline(
    tmp_path: Path, plugin_dir: Path
) -> None:
    # python_path is relative to the pipeline file, which lives beside the plugin folder
    p = doubler_file(tmp_path)
    cfg = load_pipeline(p, {"teacher": {"model": "m"}})
    assert cfg.python_path == [str(plugin_dir.resolve())]
    assert cfg.doubler.factor == 3 and cfg.doubler.verify is True  # the custom section, typed
    # its template comes from the method's own prompts directory, text kept in the config
    assert cfg.template("ask").render(question="Q?", factor=3).startswith("Write a Python")
    assert cfg.prompt_files["ask"].files["ask.j2"].startswith("Write a Python")


def test_config_travels_as_json_without_the_template_files(
    tmp_path: Path, plugin_dir: Path
) -> None:
    """A worker on another node rebuilds the config from JSON: the method module must import
    there, the templates need not exist there."""
    p = doubler_file(tmp_path)
    cfg = load_pipeline(p, {"teacher": {"model": "m"}})
    text = cfg.model_dump_json()
    (plugin_dir / "doubler_prompts" / "ask.j2").unlink()
    again = config_from_json(text)
    assert type(again) is type(cfg) and again.doubler == cfg.doubler
    assert again.template("ask").hash == cfg.template("ask").hash
    assert fingerprint(again) == fingerprint(cfg)


def test_custom_section_errors_name_file_and_line(tmp_path: Path, plugin_dir: Path) -> None:
    p = doubler_file(tmp_path, doubler={"factor": 0, "fator": 2})
    with pytest.raises(ConfigError) as err:
        load_pipeline(p, {"teacher": {"model": "m"}})
    text = str(err.value)
    assert f"{p}:{line_of(p, '  factor:')}: doubler.factor: Input should be greater" in text
    assert f"{p}:{line_of(p, '  fator:')}: doubler.fator: Extra inputs" in text


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("nosuch", "unknown method 'nosuch' (known: tinygsm, skywork, mumath_code, arithmetic"),
        ("nosuch_module:METHOD", "cannot import module 'nosuch_module'"),
        ("doubler_method:NOPE", "'doubler_method:NOPE' is nothing, not a mathsynth Method"),
        ("doubler_method:DoublerConfig", "is ModelMetaclass, not a mathsynth Method"),
    ],
)
def test_bad_kind_is_one_line_at_the_kind_line(
    tmp_path: Path, plugin_dir: Path, kind: str, says: str
) -> None:
    p = doubler_file(tmp_path, kind)
    with pytest.raises(ConfigError) as err:
        build_config(str(p), {"teacher": {"model": "m"}})
    message = str(err.value).splitlines()[1].strip()
    assert message.startswith(f"{p}:{line_of(p, 'kind:')}: kind: ") and says in message


def test_a_method_module_that_fails_to_import_is_reported_where(
    tmp_path: Path, plugin_dir: Path
) -> None:
    (plugin_dir / "broken_method.py").write_text("import json\n\nVALUE = 1 / 0\n")
    p = doubler_file(tmp_path, "broken_method:METHOD")
    with pytest.raises(ConfigError, match=r"broken_method.py:3: ZeroDivisionError"):
        load_pipeline(p)


def test_entry_point_names_a_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "doubler_method", raising=False)
    site = install_entry_point(tmp_path / "site")
    sys.path.insert(0, str(site))
    p = write(tmp_path / "p.yaml", pipeline("doubler", write_seeds(tmp_path / "s.jsonl")))
    cfg = load_pipeline(p, {"teacher": {"model": "m"}})
    assert cfg.kind == "doubler" and cfg.doubler.factor == 3
    # an entry point whose name is not the method's name is refused
    other = install_entry_point(tmp_path / "site2", name="halver")
    sys.path.insert(0, str(other))
    with pytest.raises(MethodError, match="entry point 'halver'.*must be the method's name"):
        load_method("halver")
    sys.modules.pop("doubler_method", None)


def test_fingerprint_covers_custom_section_and_template_text(
    tmp_path: Path, plugin_dir: Path
) -> None:
    p = doubler_file(tmp_path)
    base = fingerprint(load_pipeline(p, {"teacher": {"model": "m"}}))
    faster = load_pipeline(p, {"teacher": {"model": "m"}, "run": {"workers": 7}})
    assert fingerprint(faster) == base  # how fast is not what
    other = load_pipeline(p, {"teacher": {"model": "m"}, "doubler": {"factor": 4}})
    assert fingerprint(other) != base
    template = plugin_dir / "doubler_prompts" / "ask.j2"
    template.write_text(template.read_text() + "Answer with code only.\n")
    assert fingerprint(load_pipeline(p, {"teacher": {"model": "m"}})) != base


def test_method_name_taken_by_a_pipeline_section_is_refused(
    tmp_path: Path, plugin_dir: Path
) -> None:
    (plugin_dir / "clash_method.py").write_text(
        "from orchestrator.api import Method\n"
        "METHOD = Method(name='run', build_steps=lambda cfg: [])\n"
    )
    p = doubler_file(tmp_path, "clash_method:METHOD")
    with pytest.raises(ConfigError, match="method name 'run' is taken by the run: section"):
        load_pipeline(p)
