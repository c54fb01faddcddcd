"""Load seed problems and normalise them to seed ``Record``s.

Sources: a local JSONL / JSON / parquet file, a seed descriptor (``seeds/*.yaml``, naming a
file or a Hugging Face dataset id), or a Hugging Face dataset id directly (``openai/gsm8k`` with
config ``main``; needs internet). Field names are detected (question/problem/prompt/instruction;
answer/solution) and gold answers are extracted from GSM8K's ``#### N`` and MATH's ``\\boxed{}``.
Bad input raises ``SeedError`` naming the file and line: invalid JSON, bytes that are not
UTF-8, a question that is missing, empty, not text (null, a number, a list, an object) or
longer than ``max_question_chars``. Seeds are streamed (``SeedSource``): a run never holds its
whole seed file; a seed that occurs twice (same id) is read once. This module does not shard.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import Field

from orchestrator.core.records import Record
from orchestrator.core.resources import resolve_seed_file
from orchestrator.core.strict import StrictModel

QUESTION_FIELDS = ("question", "problem", "prompt", "instruction", "query")
ANSWER_FIELDS = ("answer", "solution", "gt", "gold", "final_answer")


class SeedConfig(StrictModel):
    path: str | None = None  # local file or HF dataset id
    hf_config: str | None = None
    split: str = "train"
    question_field: str | None = None  # auto: question/problem/prompt/instruction
    answer_field: str | None = None  # auto: answer/solution/gt
    # A longer question is an input error, not a prompt: it would be sent to the teacher as is.
    max_question_chars: int = Field(32_000, ge=1)


class SeedError(ValueError):
    """A seed source that cannot be read; the message names the file (and line)."""


def extract_gold_answer(text: str | None) -> str | None:
    """The final answer inside a GSM8K (``#### 42``) or MATH (``\\boxed{...}``) solution."""
    if text is None:
        return None
    text = str(text).strip()
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().replace(",", "") or None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    return text if len(text) <= 64 and "\n" not in text else None


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def _pick(row: dict[str, Any], wanted: str | None, options: Iterable[str]) -> str | None:
    if wanted:
        return wanted if wanted in row else None
    return next((f for f in options if f in row), None)


def normalise_rows(
    rows: Iterable[tuple[int, dict[str, Any]]], source: str, cfg: SeedConfig, label: str = ""
) -> list[Record]:
    """Rows ``(line_number, mapping)`` to seed records; duplicates (same id) are kept once.
    ``source`` names the input in errors; ``label`` (default: ``source``) is stored as each
    seed's ``source``, which every row derived from it carries into the published dataset."""
    return list(SeedSource(lambda: rows, source, cfg, label))


def seed_record(line: int, row: Any, source: str, cfg: SeedConfig, label: str = "") -> Record:
    """One seed file row as a seed record, checked (``SeedError`` naming file and line)."""
    if not isinstance(row, dict):
        raise SeedError(f"{source}:{line}: expected an object, got {type(row).__name__}")
    qf = _pick(row, cfg.question_field, QUESTION_FIELDS)
    if qf is None:
        want = cfg.question_field or "/".join(QUESTION_FIELDS)
        raise SeedError(f"{source}:{line}: no question field ({want}) in {sorted(row)}")
    question = row[qf]
    if question is None:
        raise SeedError(f"{source}:{line}: '{qf}' is null, not text")
    if not isinstance(question, str):
        raise SeedError(f"{source}:{line}: '{qf}' must be text, not {_json_type(question)}")
    if not question.strip():
        raise SeedError(f"{source}:{line}: '{qf}' is empty")
    if len(question) > cfg.max_question_chars:
        raise SeedError(
            f"{source}:{line}: '{qf}' is {len(question):,} characters, over the limit of "
            f"{cfg.max_question_chars:,} (seeds.max_question_chars)"
        )
    af = _pick(row, cfg.answer_field, ANSWER_FIELDS)
    gold = extract_gold_answer(row.get(af)) if af else None
    return Record.seed(question, gold, label or source)


Seeds = Union["SeedSource", list[Record]]  # what the driver takes: iterable twice, with len


class SeedSource:
    """The seeds of one input, read when iterated, never all held: each iteration reads the
    input again and yields its distinct seeds in order (the first ``limit``), each checked;
    ``len`` counts them with one such pass (and so finds a bad row before anything starts).
    The driver streams a run's seeds from here: its memory does not grow with the seed file."""

    def __init__(
        self,
        rows: Callable[[], Iterable[tuple[int, Any]]],
        source: str,
        cfg: SeedConfig,
        label: str = "",
        limit: int | None = None,
    ) -> None:
        self._rows, self.source, self.cfg, self.label, self.limit = rows, source, cfg, label, limit
        self._count: int | None = None

    def __iter__(self) -> Iterator[Record]:
        seen: set[str] = set()
        for line, row in self._rows():
            if self.limit is not None and len(seen) >= self.limit:
                return
            record = seed_record(line, row, self.source, self.cfg, self.label)
            if record.id not in seen:
                seen.add(record.id)
                yield record

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self)
        return self._count


def _json_type(value: object) -> str:
    """A value's type as JSON calls it (for messages about seed files)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _not_utf8(path: Path, line: int, data: bytes, err: UnicodeDecodeError) -> SeedError:
    return SeedError(
        f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column "
        f"{err.start + 1}); seed files are UTF-8 JSON"
    )


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _not_utf8(path, number, raw, err) from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise SeedError(f"{path}:{number}: invalid JSON: {err.msg}") from None


def _read_json(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        start = raw.rfind(b"\n", 0, err.start) + 1
        raise _not_utf8(path, line, raw[start:], UnicodeDecodeError(
            err.encoding, err.object, err.start - start, err.end - start, err.reason
        )) from None  # fmt: skip
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SeedError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list):
        raise SeedError(f"{path}:1: expected a list of objects (or an object holding one)")
    return ((i + 1, row) for i, row in enumerate(data))


def _read_parquet(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise SeedError(f"{path}: not a readable parquet file: {err}") from None
    return ((i + 1, row) for i, row in enumerate(table.to_pylist()))


def _read_hf(dataset_id: str, cfg: SeedConfig) -> Iterable[tuple[int, dict[str, Any]]]:
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, cfg.hf_config, split=cfg.split)
    except Exception as err:  # network, missing dataset, bad config: all reported the same way
        raise SeedError(f"{dataset_id}: could not load Hugging Face dataset: {err}") from err
    return ((i + 1, row) for i, row in enumerate(ds))


READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".parquet": _read_parquet}


def source_label(spec: str | None) -> str | None:
    """The ``source`` that seeds loaded from ``spec`` carry (as ``load_seeds`` sets it): a
    file's name, the dataset id a descriptor names, or a Hugging Face id. Reads descriptors only."""
    if not spec:
        return None
    path = resolve_seed_file(spec)
    if path is None:
        return spec
    if path.suffix in (".yaml", ".yml"):
        descriptor = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return source_label(descriptor.get("path")) if isinstance(descriptor, dict) else None
    return path.name


def seed_source(spec: str | None, cfg: SeedConfig, limit: int | None = None) -> SeedSource:
    """Seeds from ``spec`` (CLI) or ``cfg.path`` (pipeline file), first ``limit`` only, as a
    ``SeedSource`` (read lazily). ``SeedError`` for an input that cannot be opened or holds no
    seed; a bad row is found when the source is first counted or iterated."""
    spec = spec or cfg.path
    if not spec:
        raise SeedError("no seeds given: pass --seeds FILE|HF_ID or set seeds.path in the pipeline")
    path = resolve_seed_file(spec)
    if path is not None and path.suffix in (".yaml", ".yml"):
        descriptor = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        try:
            inner = SeedConfig.model_validate(descriptor)
        except Exception as err:
            raise SeedError(f"{path}: invalid seed descriptor: {err}") from None
        return seed_source(None, inner, limit)
    if path is not None:
        reader = READERS.get(path.suffix)
        if reader is None:
            raise SeedError(
                f"{path}: unsupported seed file type {path.suffix!r} (jsonl/json/parquet)"
            )
        # rows carry the file's name, never a local path: the dataset is published as is
        source = SeedSource(lambda: reader(path), str(path), cfg, label=path.name, limit=limit)
    elif "/" in spec and not Path(spec).suffix:
        source = SeedSource(lambda: _read_hf(spec, cfg), spec, cfg, limit=limit)
    else:
        raise SeedError(f"{spec}: no such seed file (and not a Hugging Face id like org/name)")
    if len(source) == 0:
        raise SeedError(f"{spec}: contains no seed problems")
    return source


def load_seeds(spec: str | None, cfg: SeedConfig, limit: int | None = None) -> list[Record]:
    """``seed_source`` read into a list (for callers that need every seed at once)."""
    return list(seed_source(spec, cfg, limit))
