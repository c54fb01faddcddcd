"""Pipelines, prompts and seeds ship inside the wheel and are found there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.skip(
            f"could not build a wheel here (needs hatchling from the registry): {build.stderr[-300:]}"
        )
    return next(out.glob("mathsynth-*.whl"))


def test_wheel_contains_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("orchestrator/_data/pipelines/tinygsm.yaml",
                 "orchestrator/_data/prompts/tinygsm/one_step.j2",
                 "orchestrator/_data/seeds/demo.jsonl",
                 "orchestrator/output/templates/dataset_card.md.j2",
                 "orchestrator/cli/scaffold_files/method.py",  # mathsynth init's files
                 "orchestrator/cli/scaffold_files/prompts/solve.j2"):  # fmt: skip
        assert path in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_finds_its_data(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = (
        "import orchestrator.core.resources as r, orchestrator.core.prompts as p;"
        "print(r.data_dir('pipelines'));"
        "print(sorted(r.builtin_pipelines()));"
        "print(p.load_template('tinygsm/one_step').hash)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(str(tmp_path / "site" / "orchestrator" / "_data"))
    assert "tinygsm" in lines[1]
