"""The run summary as a table for people: grouped, rejections ranked with their share, and
nothing in the summary left out (keys it does not know go under "other")."""

from __future__ import annotations

import io
import re

from rich.console import Console

from orchestrator.telemetry.summary_table import summary_table

SUMMARY = {
    "seeds_read": 1200, "seeds_skipped_already_finished": 200, "seeds_accepted": 900,
    "seeds_rejected": 80, "seeds_failed": 20, "seeds_not_run": 0, "requests": 1000,
    "prompt_tokens": 512000, "completion_tokens": 1048576, "teacher_errors": {"error:timeout": 3},
    "teacher_length": {"finish:length": 4, "length_retries": 0, "length_rejected": 1},
    "cost_usd": 1.23456, "projected_cost_usd": None, "items_parsed_by_stage": {"one_step": 9000},
    "rejected_by_reason": {"execute:timeout": 10, "dedup:duplicate": 30, "format:too_long": 60},
    "duplicates": 30, "rows_written": 2700, "rows_total": 3100, "shards_total": 12,
    "chunks_requeued": 1, "chunks_by_node": {"a" * 56: 7, "b" * 56: 5}, "interrupted": False,
    "fatal": None, "elapsed_s": 3725.5, "a_new_field": 42,
}  # fmt: skip


def table_text() -> str:
    console = Console(file=io.StringIO(), width=100, record=True)
    console.print(summary_table(SUMMARY))
    return console.export_text()


def row(text: str, *cells: str) -> bool:
    return re.search(r"\s+".join(map(re.escape, cells)), text) is not None


def test_groups_in_order_with_human_values() -> None:
    text = table_text()
    groups = [m.group(1) for m in re.finditer(r"^ (\w+)\s{2,}", text, re.M)]
    assert groups == ["seeds", "rows", "rejected", "teacher", "time", "other"], groups
    assert row(text, "seeds", "read", "1,200") and row(text, "done before", "200")
    assert row(text, "written by this run", "2,700") and row(text, "in the dataset", "3,100")
    assert row(text, "completion tokens", "1,048,576") and row(text, "cost", "$1.2346")
    assert row(text, "projected cost", "-") and row(text, "errors", "timeout 3")
    assert row(text, "cut by max_tokens", "finish:length 4, length_rejected 1")
    assert row(text, "elapsed", "1h02m (3,725.5s)") and row(text, "interrupted", "no")
    assert row(text, "chunks by node", "aaaaaaaaaaaa 7, bbbbbbbbbbbb 5")
    assert row(text, "other", "a_new_field", "42")  # a field this table does not know yet


def test_rejections_most_first_with_their_share() -> None:
    text = table_text()
    reasons = re.findall(r"(\w+:\w+)\s+(\d+) \((\d+)%\)", text)
    assert reasons == [("format:too_long", "60", "60"), ("dedup:duplicate", "30", "30"),
                       ("execute:timeout", "10", "10")]  # fmt: skip
