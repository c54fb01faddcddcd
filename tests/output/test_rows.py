"""The row schema: typed ``sampling`` and ``meta`` structs (declared fields, ``extra`` for the
rest), the chat form on every row, and a clear error for a meta value of the wrong type."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from orchestrator.core.records import Record
from orchestrator.core.sampling import SamplingParams
from orchestrator.output.rows import RowSchema, RowSchemaError, arrow_type, chat_form


def test_declared_types_map_to_arrow() -> None:
    assert arrow_type(str) == pa.string() and arrow_type(int) == pa.int64()
    assert arrow_type(list[str]) == pa.list_(pa.string())
    assert arrow_type(int | None) == pa.int64()
    sampling = arrow_type(SamplingParams)
    assert [f.name for f in sampling] == ["temperature", "top_p", "max_tokens", "seed"]
    with pytest.raises(TypeError, match="maps are not readable"):
        arrow_type(dict[str, str])
    with pytest.raises(ValueError, match="reserved"):
        RowSchema({"extra": str})


def test_meta_struct_keeps_declared_types_and_undeclared_keys() -> None:
    schema = RowSchema({"depth": int, "moves": list[str], "a": str})
    record = Record(
        id="r", question="Q?", answer="4", method="m",
        sampling=SamplingParams(temperature=0.5).model_dump(exclude_none=True),
        meta={"depth": 2, "moves": ["deepen"], "a": 10**30, "note": {"x": 1}},
    )  # fmt: skip
    row = schema.table([record], "train").to_pylist()[0]
    assert row["meta"]["depth"] == 2 and row["meta"]["moves"] == ["deepen"]
    assert row["meta"]["a"] == str(10**30)  # numbers into a text field stay exact
    assert json.loads(row["meta"]["extra"]) == {"note": {"x": 1}}
    assert row["sampling"] == {"temperature": 0.5, "top_p": 1.0, "max_tokens": 2048, "seed": None}
    # a row without a teacher request has no sampling, and a row without extras no extra
    plain = schema.table([Record(id="p", question="Q?", meta={"depth": 1})], "train").to_pylist()
    assert plain[0]["sampling"] is None and plain[0]["meta"]["extra"] is None
    # the schema depends on the declaration only: shards of one method always match
    assert schema.train == RowSchema({"depth": int, "moves": list[str], "a": str}).train


def test_wrong_meta_type_is_named() -> None:
    schema = RowSchema({"depth": int})
    bad = Record(id="r", question="Q?", method="mine/step", meta={"depth": "deep"})
    with pytest.raises(RowSchemaError, match="meta field 'depth' of a 'mine/step' row is 'deep'"):
        schema.table([bad], "train")


def test_chat_form() -> None:
    # a program and its executed answer (TinyGSM), an answer alone, a method's own solution
    solution, messages = chat_form("Q?", None, None, "def f():\n    return 4\n", "4")
    assert solution == "```python\ndef f():\n    return 4\n```\n\nThe answer is $\\boxed{4}$."
    assert messages == [{"role": "user", "content": "Q?"},
                        {"role": "assistant", "content": solution}]  # fmt: skip
    assert chat_form("Q?", None, None, None, "7")[0] == "The answer is $\\boxed{7}$."
    assert chat_form("Q?", "Because.", None, "x = 1", "1")[0] == "Because."
    assert chat_form("Q?", None, None, None, None) == (None, None)
    # the method's own solution/messages in meta become the columns
    own = Record(id="r", question="Q?", meta={"solution": "S", "label": True})
    row = RowSchema().table([own], "side").to_pylist()[0]
    assert row["solution"] == "S" and row["label"] is True and row["meta"]["extra"] is None
    assert row["messages"][1] == {"role": "assistant", "content": "S"}
