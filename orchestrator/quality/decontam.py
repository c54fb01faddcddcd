"""Decontamination: drop generated records that share an n-gram with a benchmark test item.

``build_index(settings)`` reads the benchmark sources once (local jsonl/json/parquet through
``orchestrator.core.seeds.READERS``, or a Hugging Face dataset id) into an ``NgramIndex``
(``orchestrator.quality.ngram_index``): sorted 64-bit n-gram hashes with the first item holding each.
It is small and picklable (GSM8K test + MATH test, TinyGSM rule: 60k n-grams + 185 short
items, 0.76 MB pickled), so the driver builds it and ships it to every worker (``cfg`` → ``ray.put`` or the
constructor argument). ``Decontaminate(index, fields)`` is a ``Filter`` stage: a record whose
checked fields share an n-gram with an item is dropped with reason ``contaminated``; its
``reject_detail`` names the item ("source:id") and the matching span, and
``meta["contamination"]`` holds both.

Presets: ``tinygsm`` = 13-grams after removing punctuation and numbers (TinyGSM), plus
capitalised words masked (names); ``skywork`` = 30-grams, numbers kept, nothing masked. Items
shorter than ``n`` tokens use the whole-item rule of ``ngram_index``. Measured on 2,000 clean
GSM8K-train questions against GSM8K test + MATH test: 5 flagged (0.25%), each a genuine
template overlap between GSM8K train and test (see ``tests/quality/test_decontam.py``). This module
does not fetch anything unless a source is a Hugging Face id, and it never edits records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from orchestrator.core.records import Record
from orchestrator.core.seeds import QUESTION_FIELDS, READERS, SeedError
from orchestrator.core.stage import Filter
from orchestrator.core.strict import StrictModel
from orchestrator.quality.ngram_index import NgramIndex, Rule

PRESETS = {
    "tinygsm": Rule(n=13, strip_numbers=True, mask_names=True),
    "skywork": Rule(n=30, strip_numbers=False, mask_names=False),
}
ID_FIELDS = ("id", "unique_id", "idx", "task_id")


class BenchmarkSource(StrictModel):
    """A benchmark test set: a local jsonl/json/parquet file or a Hugging Face dataset id."""

    path: str
    name: str | None = Field(None, description="label in reject details; default: the path")
    hf_config: str | None = None
    split: str = "test"
    fields: list[str] | None = Field(None, description="item fields; default: the question")

    def label(self) -> str:
        """The name in reject details (published with the data): never an absolute path."""
        return self.name or (Path(self.path).name if Path(self.path).is_absolute() else self.path)


class DecontamSettings(StrictModel):
    enabled: bool = False
    benchmarks: list[BenchmarkSource] = []
    preset: Literal["tinygsm", "skywork"] = "tinygsm"
    n: int | None = Field(None, ge=1, le=200, description="overrides the preset's n")
    strip_numbers: bool | None = None
    mask_names: bool | None = None
    fields: list[Literal["question", "code", "answer"]] = ["question"]

    def rule(self) -> Rule:
        base = PRESETS[self.preset]
        return Rule(
            n=self.n if self.n is not None else base.n,
            strip_numbers=base.strip_numbers if self.strip_numbers is None else self.strip_numbers,
            mask_names=base.mask_names if self.mask_names is None else self.mask_names,
        )


def _rows(source: BenchmarkSource) -> list[tuple[int, dict[str, Any]]]:
    path = Path(source.path)
    if path.is_file():
        reader = READERS.get(path.suffix)
        if reader is None:
            raise SeedError(f"{path}: unsupported benchmark file type (jsonl/json/parquet)")
        return list(reader(path))
    if "/" in source.path and not path.suffix:
        import datasets

        try:
            ds = datasets.load_dataset(source.path, source.hf_config, split=source.split)
        except Exception as err:  # network, missing dataset, bad config: reported the same way
            raise SeedError(
                f"{source.path}: could not load Hugging Face dataset for decontamination: {err}; "
                "offline, give the benchmark as a local file (decontamination.benchmarks[].path: "
                "jsonl/json/parquet) or run with --no-decontaminate"
            ) from err
        return [(i + 1, row) for i, row in enumerate(ds)]
    raise SeedError(f"{source.path}: no such benchmark file (and not a Hugging Face id)")


def benchmark_texts(source: BenchmarkSource) -> list[tuple[str, str]]:
    """``(item label, text)`` for every item and indexed field of ``source``."""
    out: list[tuple[str, str]] = []
    for line, row in _rows(source):
        fields = source.fields or [next((f for f in QUESTION_FIELDS if f in row), "")]
        missing = [f for f in fields if f not in row]
        if missing:
            raise SeedError(f"{source.path}:{line}: no field {missing[0]!r} in {sorted(row)}")
        item = next((row[f] for f in ID_FIELDS if row.get(f) is not None), line)
        out.extend((f"{source.label()}:{item}", str(row[f])) for f in fields if row[f])
    return out


def build_index(settings: DecontamSettings) -> NgramIndex:
    texts = [t for source in settings.benchmarks for t in benchmark_texts(source)]
    return NgramIndex.build(texts, settings.rule())


class Decontaminate(Filter):
    """Drop records sharing an n-gram with a benchmark item (reason ``contaminated``).

    ``run`` matches records in chunks of ``chunk`` (vectorised); ``filter`` does one record."""

    name = "decontam"

    def __init__(
        self,
        index: NgramIndex,
        fields: list[str] | tuple[str, ...] = ("question",),
        chunk: int = 256,
    ) -> None:
        super().__init__()
        self.index = index
        self.fields = list(fields)
        self.chunk = chunk

    def filter(self, record: Record) -> str | None:
        self._mark([record])
        return "contaminated" if "contamination" in record.meta else None

    def _mark(self, records: list[Record]) -> None:
        """Set ``meta["contamination"]`` on records that match, checking fields in order."""
        todo = records
        for field in self.fields:
            texts = [str(getattr(r, field, None) or "") for r in todo]
            for record, match in zip(todo, self.index.match_many(texts), strict=True):
                if match is not None:
                    record.meta["contamination"] = {
                        "benchmark": match.item, "field": field, "ngram": match.ngram,
                    }  # fmt: skip
            todo = [r for r in todo if "contamination" not in r.meta]

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        batch: list[Record] = []
        for record in records:
            batch.append(record)
            if len(batch) >= self.chunk:
                yield from self._decide(batch)
                batch = []
        yield from self._decide(batch)

    def _decide(self, batch: list[Record]) -> Iterator[Record]:
        self._mark(batch)
        for record in batch:
            self.counters.add(self.name, "seen")
            if "contamination" in record.meta:
                self.drop(record, "contaminated")
            else:
                self.counters.add(self.name, "kept")
                yield record

    def drop(self, record: Record, reason: str, detail: str | None = None) -> None:
        found = record.meta.get("contamination")
        if detail is None and found is not None:
            detail = f"{found['benchmark']} ({found['field']}): {found['ngram'][:300]}"
        super().drop(record, reason, detail)
