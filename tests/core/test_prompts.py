"""Templates named in pipeline files: by name (``prompt_dirs``, then built-in), by ``.j2`` path
relative to the pipeline file; includes collected into the hash; every error at load, one line
naming the pipeline file and line (and the template's own line for syntax errors)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from orchestrator.core.config import ConfigError, load_pipeline
from orchestrator.core.prompts import builtin_prompts, load_template
from orchestrator.core.resources import data_dir
from tests.support.cli import run_cli


def tinygsm_file(tmp_path: Path, **top: object) -> Path:
    data = yaml.safe_load((data_dir("pipelines") / "tinygsm.yaml").read_text())
    data.update(top)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if text in ln)


def test_builtin_hash_covers_the_template_and_its_includes() -> None:
    template = load_template("tinygsm/one_step")
    root = builtin_prompts()
    digest = hashlib.sha256()
    for name in ("tinygsm/one_step.j2", "tinygsm/fewshot_one_step.txt"):
        digest.update(name.encode())
        digest.update((root / name).read_text().encode())
    assert template.hash == digest.hexdigest()[:16]


def test_template_path_relative_to_the_pipeline_file(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    # a user template including a built-in few-shot file
    (tmp_path / "mine" / "one.j2").write_text(
        "Write {{ n }} problems like: {{ seed.question }}\n{% include 'tinygsm/fewshot_one_step.txt' %}"
    )
    p = tinygsm_file(tmp_path, tinygsm={"templates": {"one_step": "mine/one.j2"}})
    cfg = load_pipeline(p, {"teacher": {"model": "m"}})
    source = cfg.prompt_files["mine/one.j2"]
    assert list(source.files) == ["one.j2", "tinygsm/fewshot_one_step.txt"]
    assert cfg.template("mine/one.j2").name == "mine/one.j2"
    # the same file given as an absolute path is the same template
    absolute = tinygsm_file(
        tmp_path, tinygsm={"templates": {"one_step": str(tmp_path / "mine" / "one.j2")}}
    )
    again = load_pipeline(absolute, {"teacher": {"model": "m"}})
    assert again.template(str(tmp_path / "mine" / "one.j2")).hash == source.hash


def test_prompt_dirs_come_before_the_builtin_folder(tmp_path: Path) -> None:
    (tmp_path / "prompts" / "tinygsm").mkdir(parents=True)
    (tmp_path / "prompts" / "tinygsm" / "one_step.j2").write_text("my own {{ n }}")
    p = tinygsm_file(tmp_path, prompt_dirs=["prompts"])
    cfg = load_pipeline(p, {"teacher": {"model": "m"}})
    assert cfg.template("tinygsm/one_step").source == "my own {{ n }}"
    assert (
        cfg.template("tinygsm/two_step_program").hash
        == load_template("tinygsm/two_step_program").hash
    )  # names not in prompt_dirs still come from the built-in folder


def test_missing_template_is_one_line_at_its_key(tmp_path: Path) -> None:
    p = tinygsm_file(tmp_path, tinygsm={"templates": {"one_step": "/no/such/one_step.j2"}})
    with pytest.raises(ConfigError) as err:
        load_pipeline(p, {"teacher": {"model": "m"}})
    line = line_of(p, "one_step: /no/such")
    assert str(err.value).splitlines()[1].strip() == (
        f"{p}:{line}: tinygsm.templates.one_step: prompt template file "
        "'/no/such/one_step.j2' not found (/no/such/one_step.j2)"
    )
    # from the command line: exit 2, that line, no traceback (it was a 143-line one)
    code, out = run_cli("run", str(p), "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                        "--seeds", "demo.jsonl", "--out", str(tmp_path / "o"), timeout=120)  # fmt: skip
    assert code == 2 and "Traceback" not in out, out
    assert f"{p}:{line}: tinygsm.templates.one_step" in out.replace("\n", "")
    assert not (tmp_path / "o").exists()


def test_absolute_path_without_suffix_and_escaping_names(tmp_path: Path) -> None:
    p = tinygsm_file(tmp_path, tinygsm={"templates": {"one_step": "/no/such/one_step"}})
    with pytest.raises(ConfigError, match="prompt template file '/no/such/one_step' not found"):
        load_pipeline(p, {"teacher": {"model": "m"}})
    p = tinygsm_file(tmp_path, tinygsm={"templates": {"one_step": "../one_step"}})
    with pytest.raises(ConfigError, match="leaves its folder: give a path ending .j2"):
        load_pipeline(p, {"teacher": {"model": "m"}})


def test_unknown_template_name_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    p = tinygsm_file(tmp_path, prompt_dirs=["prompts"], tinygsm={"templates": {"one_step": "nope"}})
    with pytest.raises(ConfigError) as err:
        load_pipeline(p, {"teacher": {"model": "m"}})
    text = str(err.value)
    assert f"{p}:{line_of(p, 'one_step: nope')}: tinygsm.templates.one_step:" in text
    assert f"no nope.j2 in {(tmp_path / 'prompts').resolve()}, {builtin_prompts()}" in text


def test_template_syntax_error_names_the_template_line(tmp_path: Path) -> None:
    (tmp_path / "bad.j2").write_text("line one\n{% if n %}\nno end\n")
    p = tinygsm_file(tmp_path, tinygsm={"templates": {"one_step": "bad.j2"}})
    with pytest.raises(ConfigError, match=rf"{p}:\d+: tinygsm.templates.one_step: "
                       rf"{tmp_path / 'bad.j2'}:\d: template syntax error"):  # fmt: skip
        load_pipeline(p, {"teacher": {"model": "m"}})


def test_bad_prompt_dirs_and_prompt_files_are_refused(tmp_path: Path) -> None:
    p = tinygsm_file(tmp_path, prompt_dirs=["missing"])
    with pytest.raises(ConfigError, match=rf"{p}:\d+: prompt_dirs.0: not a directory"):
        load_pipeline(p, {"teacher": {"model": "m"}})
    p = tinygsm_file(tmp_path, prompt_files={"x": {}})
    with pytest.raises(ConfigError, match=rf"{p}:\d+: prompt_files: filled by mathsynth"):
        load_pipeline(p, {"teacher": {"model": "m"}})
