"""The row schema of an output dataset, and records turned into rows.

Columns: ``id, seed_id, method, question, code, answer, gold_answer, source, teacher, template,
template_hash, sampling, created_at, parent_id, meta, solution, messages, reply_ids`` (rejected
rows add
``reject_reason, reject_detail``; side splits add ``label``). Structured columns:

- ``sampling``: struct ``{temperature, top_p, max_tokens, seed}`` (null for rows made without
  a teacher request);
- ``meta``: a struct of the fields the method declares with their types (``Method.meta``),
  plus ``contamination`` (set on rows dropped by decontamination) and ``extra``: the keys a
  method did not declare, as one JSON object (null when there are none). The struct depends
  only on the method, so every shard of a dataset has the same parquet schema and
  ``datasets.load_dataset`` reads them together;
- ``solution`` and ``messages`` (chat form, ``[user: question, assistant: solution]``) on every
  row (see ``chat_form``): any dataset is SFT-ready;
- ``reply_ids``: the keys of the teacher replies the row came from in the reply log
  (``orchestrator.output.replies``; ``mathsynth show OUT --id ID --raw`` prints them).

This module builds schemas and arrow tables; it does not write files (``output.store`` does).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams

ROW_SCHEMA_VERSION = 3  # 2: sampling/meta structs, chat form on every row; 3: reply_ids
MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
COMMON_META: dict[str, Any] = {
    "contamination": pa.struct(
        [("benchmark", pa.string()), ("field", pa.string()), ("ngram", pa.string())]
    ),
}
_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
}


class RowSchemaError(ValueError):
    """Rows that do not fit the declared schema (a method's meta field of the wrong type)."""


def arrow_type(spec: Any) -> pa.DataType:
    """The arrow type of a meta field declared as ``str``/``int``/``float``/``bool``,
    ``list[...]``, ``X | None``, a ``Literal`` of strings, a pydantic model (a struct of its
    fields) or a pyarrow type."""
    if isinstance(spec, pa.DataType):
        return spec
    if spec in _SCALARS:
        return _SCALARS[spec]
    origin, args = typing.get_origin(spec), typing.get_args(spec)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return arrow_type(inner[0])
    if origin is list and len(args) == 1:
        return pa.list_(arrow_type(args[0]))
    if origin is typing.Literal and args and all(isinstance(a, str) for a in args):
        return pa.string()
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return pa.struct([(n, arrow_type(f.annotation)) for n, f in spec.model_fields.items()])
    raise TypeError(
        f"meta type {spec!r}: use str, int, float, bool, list[...], a pydantic model or a "
        "pyarrow type (maps are not readable by `datasets`)"
    )


SAMPLING_TYPE = arrow_type(SamplingParams)


def chat_form(
    question: str, solution: str | None, messages: list[dict[str, str]] | None,
    code: str | None, answer: str | None,
) -> tuple[str | None, list[dict[str, str]] | None]:  # fmt: skip
    """``(solution, messages)`` of a row. A method's own ``solution``/``messages`` (in
    ``meta``) win; otherwise a row with a program gets the program in a ```python fence
    followed by "The answer is $\\boxed{answer}$." (its executed answer), and a row with only an
    answer gets that sentence. ``messages``: the question as the user turn, the solution as the
    assistant turn."""
    program = code.strip() if isinstance(code, str) else ""
    if solution is None and (program or answer is not None):
        parts = [f"```python\n{program}\n```"] if program else []
        if answer is not None:
            parts.append(f"The answer is $\\boxed{{{answer}}}$.")
        solution = "\n\n".join(parts)
    if messages is None and solution is not None:
        messages = [{"role": "user", "content": question},
                    {"role": "assistant", "content": solution}]  # fmt: skip
    return solution, messages


class RowSchema:
    """The schemas of one method's splits (``train``, ``rejected``, ``side``)."""

    def __init__(self, meta: Mapping[str, Any] | None = None) -> None:
        meta = dict(meta or {})
        clash = sorted(set(meta) & {*COMMON_META, "extra"})
        if clash:
            raise ValueError(f"meta fields {clash} are reserved")
        self.meta_types = {name: arrow_type(spec) for name, spec in {**meta, **COMMON_META}.items()}
        meta_type = pa.struct([*self.meta_types.items(), ("extra", pa.string())])
        fields: list[tuple[str, pa.DataType]] = [
            ("id", pa.string()), ("seed_id", pa.string()), ("method", pa.string()),
            ("question", pa.string()), ("code", pa.string()), ("answer", pa.string()),
            ("gold_answer", pa.string()), ("source", pa.string()), ("teacher", pa.string()),
            ("template", pa.string()), ("template_hash", pa.string()),
            ("sampling", SAMPLING_TYPE), ("created_at", pa.string()), ("parent_id", pa.string()),
            ("meta", meta_type), ("solution", pa.string()), ("messages", MESSAGES_TYPE),
            ("reply_ids", pa.list_(pa.string())),
        ]  # fmt: skip
        self.train = pa.schema(fields)
        self.rejected = pa.schema(
            [*fields, ("reject_reason", pa.string()), ("reject_detail", pa.string())]
        )
        self.side = pa.schema([*fields, ("label", pa.bool_())])

    def fingerprint(self) -> str:
        """Changes with the row layout (a resume must not mix two layouts in one dataset)."""
        return content_hash(ROW_SCHEMA_VERSION, [(n, str(t)) for n, t in self.meta_types.items()])

    def row(self, record: Record, schema: pa.Schema) -> dict[str, Any]:
        data = record.to_dict()
        meta = dict(data.pop("meta"))
        own = {name: meta.pop(name, None) for name in ("solution", "messages", "label")}
        data["label"] = own["label"]
        data["solution"], data["messages"] = chat_form(
            record.question, own["solution"], own["messages"], record.code, record.answer
        )
        sampling = data["sampling"]  # every field, as the row reads back from parquet
        data["sampling"] = {n: sampling.get(n) for n in SAMPLING_TYPE.names} if sampling else None
        struct = {
            n: _coerce(meta.pop(n), t) if n in meta else None for n, t in self.meta_types.items()
        }
        extra = json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str)
        data["meta"] = {**struct, "extra": extra if meta else None}
        return {name: data.get(name) for name in schema.names}

    def table(
        self, records: Sequence[Record], split: str, metadata: dict[bytes, bytes] | None = None
    ) -> pa.Table:
        """``records`` as an arrow table of ``split`` (``train``, ``rejected`` or ``side``)."""
        return self.from_dicts(self.dicts(records, split), split, metadata, records)

    def dicts(self, records: Sequence[Record], split: str) -> list[dict[str, Any]]:
        """``records`` as row dicts of ``split`` (the finalizer takes rows in this form and
        writes them later with ``from_dicts``)."""
        schema: pa.Schema = getattr(self, split)
        return [self.row(r, schema) for r in records]

    def from_dicts(
        self,
        rows: list[dict[str, Any]],
        split: str,
        metadata: dict[bytes, bytes] | None = None,
        records: Sequence[Record] | None = None,
    ) -> pa.Table:
        """Row dicts as an arrow table of ``split``; given the ``records`` they were made
        from, a meta value of the wrong type raises ``RowSchemaError`` naming it."""
        schema: pa.Schema = getattr(self, split)
        if metadata:
            schema = schema.with_metadata(metadata)
        try:
            return pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            wrong_meta = self._explain(rows, records) if records is not None else None
            if wrong_meta is None:
                raise
            raise wrong_meta from err

    def _explain(
        self, rows: list[dict[str, Any]], records: Sequence[Record]
    ) -> RowSchemaError | None:
        """The first meta value that does not fit its declared type, as an error."""
        for name, kind in self.meta_types.items():
            for row, record in zip(rows, records, strict=True):
                value = row["meta"].get(name)
                try:
                    pa.array([value], type=kind)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    return RowSchemaError(
                        f"meta field {name!r} of a {record.method!r} row is {value!r}, "
                        f"which is not the declared {kind}"
                    )
        return None


def _coerce(value: Any, kind: pa.DataType) -> Any:
    """Lossless conveniences: numbers and booleans into string fields (big integers stay
    exact), integers into float fields. Anything else is passed to arrow as is."""
    if value is None:
        return None
    if pa.types.is_string(kind) and isinstance(value, (int, float, bool)):
        return str(value)
    if pa.types.is_floating(kind) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
