"""What the dataset card and its plots say, gathered from the output as it is on disk.

``gather(store)`` reads the committed files of every split (``data/``, ``rejected/``,
``verifier/``; a few columns each, one file at a time), the funnel of ``output.stats``,
``summary.json`` (the last run's accounting) and ``_mathsynth/run.json``, which the driver
writes at the start of every run with ``run_record(cfg)``: the resolved configuration, the
prompt templates' hashes and the mathsynth version. So the facts are true after any run into the
directory, resumed ones included, and can be gathered again at any time (``mathsynth stats
--plot``, ``mathsynth push``). Object-store outputs are read the same way. This module writes
nothing and renders nothing.
"""

from __future__ import annotations

import importlib.metadata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from orchestrator.core.config import PipelineConfig
from orchestrator.methods.catalog import template_names
from orchestrator.output.funnel import stage_levels, stage_rates
from orchestrator.output.stats import funnel
from orchestrator.output.store import OutputStore

RUN_FILE = "_mathsynth/run.json"
SPLITS = ("data", "rejected", "verifier")  # folders; ``data`` is the train split
_SHARED_COLUMNS = ["teacher", "template", "template_hash", "source"]
_TRAIN_COLUMNS = ["question", "code", "solution", "answer", *_SHARED_COLUMNS]


def package_version() -> str:
    try:
        return importlib.metadata.version("mathsynth")
    except importlib.metadata.PackageNotFoundError:  # a clone on PYTHONPATH, not installed
        return "unknown"


def run_record(cfg: PipelineConfig) -> dict[str, Any]:
    """What ``run.json`` holds beside the pipeline name and fingerprint (see module docstring)."""
    return {
        "config": cfg.model_dump(mode="json", exclude={"prompt_files"}),  # (texts: in prompts/)
        "templates": {name: cfg.template(name).hash for name in template_names(cfg)},
        "mathsynth": package_version(),
    }


@dataclass
class SplitFacts:
    files: int = 0
    rows: int = 0
    teachers: Counter[str] = field(default_factory=Counter)
    templates: Counter[tuple[str, str]] = field(default_factory=Counter)  # (name, hash) -> rows
    sources: Counter[str] = field(default_factory=Counter)
    labels: Counter[bool] = field(default_factory=Counter)  # verifier split only


@dataclass
class CardFacts:
    run: dict[str, Any]  # run.json; {} if no run wrote it
    cfg: PipelineConfig | None  # the last run's configuration, if run.json holds a valid one
    funnel: dict[str, Any]  # output.stats.funnel
    rates: dict[str, Any] | None  # output.funnel.stage_rates (None without a configuration)
    splits: dict[str, SplitFacts]  # only splits that have files
    question_words: np.ndarray  # per train row
    solution_words: np.ndarray  # per train row with a program or a solution
    answers: Counter[str]  # train rows' answers
    summary: dict[str, Any] | None  # summary.json of the last run

    @property
    def rows(self) -> int:
        return self.splits["data"].rows if "data" in self.splits else 0


def _words(column: pa.ChunkedArray) -> np.ndarray:
    counts = pc.list_value_length(pc.utf8_split_whitespace(column)).drop_null()
    return counts.to_numpy(zero_copy_only=False).astype(np.int64)


def _count(counter: Counter[Any], column: pa.ChunkedArray) -> None:
    for item in pc.value_counts(column.drop_null()).to_pylist():
        counter[item["values"]] += item["counts"]


def _config(run: dict[str, Any]) -> PipelineConfig | None:
    if not isinstance(run.get("config"), dict):
        return None  # written by a mathsynth that did not keep it
    try:
        return PipelineConfig.model_validate(run["config"])
    except ValidationError:  # written by another mathsynth version
        return None


def gather(store: OutputStore) -> CardFacts:
    run = store.read_json(RUN_FILE) or {}
    cfg = _config(run)
    info = funnel(store.url)
    splits: dict[str, SplitFacts] = {}
    questions: list[np.ndarray] = []
    solutions: list[np.ndarray] = []
    answers: Counter[str] = Counter()
    for split in SPLITS:
        files = store.files(split)
        if not files:
            continue
        facts = splits[split] = SplitFacts(files=len(files))
        train = split == "data"
        for path in files:
            columns = _TRAIN_COLUMNS if train else _SHARED_COLUMNS
            table = store.read_table(path, columns + (["label"] if split == "verifier" else []))
            facts.rows += table.num_rows
            _count(facts.teachers, table.column("teacher"))
            _count(facts.sources, table.column("source"))
            pairs = pa.table({"t": table.column("template"), "h": table.column("template_hash")})
            for item in pairs.group_by(["t", "h"]).aggregate([([], "count_all")]).to_pylist():
                facts.templates[(item["t"] or "", item["h"] or "")] += item["count_all"]
            if split == "verifier":
                _count(facts.labels, table.column("label"))
            if train:
                questions.append(_words(table.column("question")))
                solutions.append(_words(pc.coalesce(table["code"], table["solution"])))
                _count(answers, table.column("answer"))
    rates = None
    if cfg is not None:
        try:
            levels = stage_levels(cfg)
        except (FileNotFoundError, ValueError):  # a prompt template this version lacks
            levels = None
        if levels is not None:
            rates = stage_rates(info["dropped_by_stage"], info["rows"], levels)
    empty = np.zeros(0, dtype=np.int64)
    return CardFacts(
        run=run, cfg=cfg, funnel=info, rates=rates, splits=splits,
        question_words=np.concatenate(questions) if questions else empty,
        solution_words=np.concatenate(solutions) if solutions else empty,
        answers=answers, summary=store.read_json("summary.json"),
    )  # fmt: skip
