"""``mathsynth mix``: blend a generated set (e.g. arithmetic) into an instruction-tuning
dataset at a given ratio, keeping where every row came from.

Inputs: a mathsynth output directory (its ``data/train-*.parquet``), a directory of parquet /
JSON-lines files, one such file, or a Hugging Face dataset id (``split``). Every row becomes a
conversation, ``messages: list<struct<role, content>>``, read from the first of these column
sets it has: ``messages`` / ``conversations`` (OpenAI ``role``/``content`` or ShareGPT
``from``/``value``), ``instruction`` [+ ``input``] + ``output``/``response``, ``prompt`` +
``response``/``completion``, ``question``/``problem``/``query`` + ``solution``/``response``/
``answer``. The output has three columns, ``messages``, ``source`` (the name of the input
the row came from) and ``source_id`` (the row's ``id``, else its index in that input).

``ratio`` is the share of the *output* taken by the blended set: all base rows are kept and
``round(ratio / (1 - ratio) * n_base)`` rows of the blended set are sampled (all of them, and
the achieved ratio reported, when it has fewer). Rows are shuffled with ``seed`` and written
as ``OUT/data/train-*.parquet`` with a dataset card, so ``datasets.load_dataset(OUT)`` loads
it; ``OUT/mix.json`` holds the counts. Rows that cannot be read as a conversation are an
error, not silently dropped. This module does not tokenize, deduplicate or filter.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.output.rows import MESSAGES_TYPE

SCHEMA = pa.schema([("messages", MESSAGES_TYPE), ("source", pa.string()),
                    ("source_id", pa.string())])  # fmt: skip
ROWS_PER_FILE = 100_000
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
         "bot": "assistant", "model": "assistant", "system": "system"}  # fmt: skip
PAIRS = (
    ("prompt", ("response", "completion")),
    ("question", ("solution", "response", "answer")),
    ("problem", ("solution", "answer")),
    ("query", ("response", "answer")),
)
CARD = (
    "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
    "    path: data/train-*.parquet\n---\n\n# mathsynth mix\n\n{summary}\n"
)


class MixError(ValueError):
    """An input that cannot be read or mixed; the message says which and why."""


def _read_file(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        data = next((v for v in data.values() if isinstance(v, list)), data)
        if isinstance(data, list):
            return data
    raise MixError(f"{path}: unsupported file (parquet, jsonl, or json holding a list)")


def load_rows(spec: str | Path, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a mathsynth output dir, a folder of parquet/jsonl files, a file, or an HF id.
    Local files are read directly (no ``datasets`` cache involved)."""
    path = Path(spec)
    if path.is_dir():
        folder = path / "data" if (path / "data").is_dir() else path
        files = sorted(folder.glob("*.parquet")) or sorted(folder.glob("*.jsonl"))
        if not files:
            raise MixError(f"{spec}: no .parquet or .jsonl files in {folder}")
        return [row for f in files for row in _read_file(f)]
    if path.is_file():
        return _read_file(path)
    import datasets

    try:
        return datasets.load_dataset(str(spec), split=split).to_list()
    except Exception as err:  # network, missing dataset, bad split: reported the same way
        raise MixError(f"{spec}: not a local path, and not loadable from the hub: {err}") from err


def _turns(turns: list[dict[str, Any]]) -> list[dict[str, str]] | None:
    out = []
    for turn in turns:
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if ROLES.get(str(role)) is None or content is None:
            return None
        out.append({"role": ROLES[str(role)], "content": str(content)})
    return out or None


def to_messages(row: dict[str, Any]) -> list[dict[str, str]] | None:
    """The row as a conversation (see module docstring), or None if no column set fits."""
    for name in ("messages", "conversations"):
        if isinstance(row.get(name), list):
            return _turns(row[name])
    if row.get("instruction") and row.get("output", row.get("response")) is not None:
        user = str(row["instruction"])
        if row.get("input"):
            user += "\n\n" + str(row["input"])
        reply = row.get("output", row.get("response"))
        return [{"role": "user", "content": user}, {"role": "assistant", "content": str(reply)}]
    for ask, answers in PAIRS:
        reply = next((row[a] for a in answers if row.get(a) is not None), None)
        if row.get(ask) and reply is not None:
            return [{"role": "user", "content": str(row[ask])},
                    {"role": "assistant", "content": str(reply)}]  # fmt: skip
    return None


def as_conversations(rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        messages = to_messages(row)
        if messages is None:
            raise MixError(f"{source}: row {i} has no conversation columns ({sorted(row)})")
        out.append({"messages": messages, "source": source,
                    "source_id": str(row["id"]) if row.get("id") else str(i)})  # fmt: skip
    return out


def source_name(spec: str | Path) -> str:
    path = Path(spec)
    return path.stem if path.is_file() else (path.name if path.exists() else str(spec))


def mix(
    blend: str | Path,
    base: str | Path,
    ratio: float,
    out: str | Path,
    *,
    seed: int = 0,
    split: str = "train",
    blend_name: str | None = None,
    base_name: str | None = None,
) -> dict[str, Any]:
    """Write the mix of ``blend`` into ``base`` at ``ratio`` to ``out``; returns the counts."""
    if not 0 <= ratio < 1:
        raise MixError(f"ratio must be in [0, 1), the blended set's share of the output: {ratio}")
    out = Path(out)
    if (out / "data").is_dir() and any((out / "data").iterdir()):
        raise MixError(f"{out}/data is not empty; choose another --out")
    base_rows = as_conversations(load_rows(base, split), base_name or source_name(base))
    extra = as_conversations(load_rows(blend, split), blend_name or source_name(blend))
    rng = random.Random(seed)
    wanted = round(ratio / (1 - ratio) * len(base_rows))
    chosen = rng.sample(extra, min(wanted, len(extra)))
    rows = base_rows + chosen
    rng.shuffle(rows)
    (out / "data").mkdir(parents=True, exist_ok=True)
    files = max(1, -(-len(rows) // ROWS_PER_FILE))
    for k in range(files):
        part = rows[k * ROWS_PER_FILE : (k + 1) * ROWS_PER_FILE]
        table = pa.Table.from_pylist(part, schema=SCHEMA)
        pq.write_table(table, out / "data" / f"train-{k:05d}-of-{files:05d}.parquet")
    summary = {
        "base": str(base), "base_rows": len(base_rows), "blend": str(blend),
        "blend_rows_available": len(extra), "blend_rows_wanted": wanted,
        "blend_rows": len(chosen), "rows": len(rows), "ratio_requested": ratio,
        "ratio_achieved": round(len(chosen) / len(rows), 6) if rows else 0.0, "seed": seed,
    }  # fmt: skip
    (out / "mix.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "README.md").write_text(CARD.format(summary=json.dumps(summary, indent=2)))
    return summary
