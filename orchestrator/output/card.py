"""The dataset card (``README.md`` of the output), rewritten from what is on disk after each run.

``write_card(store)`` gathers the facts (``output.card_facts``), writes the plots
(``output.plots``) and renders ``templates/dataset_card.md.j2`` through
``huggingface_hub.DatasetCard``: Hub metadata (license, language, task categories, size
category, tags, pretty name, and ``configs`` naming only the splits that have files, so
``datasets.load_dataset(DIR)`` and the Hub viewer load it), then the funnel with accept rates
per stage, dedup and decontamination figures, rejections by reason, length and answer
distributions, teacher and prompt hashes, and the resolved configuration with a command to
reproduce (``output.card_reproduce``). The card holds no local path. License and the other
settings come from ``card:`` of the pipeline (``output.card_settings``). This module decides
nothing about the data and uploads nothing (``output.push`` does).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import DatasetCard, DatasetCardData

from orchestrator.output.card_facts import CardFacts, gather
from orchestrator.output.card_reproduce import reproduce
from orchestrator.output.card_settings import CardSettings
from orchestrator.output.plots import NAMES as PLOT_NAMES
from orchestrator.output.plots import write_plots
from orchestrator.output.portable import portable
from orchestrator.output.store import OutputStore

CARD_FILE = "README.md"
TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md.j2"
CONFIGS = {  # split folder -> (config name, file pattern, what its rows are)
    "data": ("default", "data/train-*.parquet", "accepted rows"),
    "rejected": ("rejected", "rejected/rejected-*.parquet",
                 "every dropped item, with `reject_reason` and `reject_detail`"),
    "verifier": ("verifier", "verifier/verifier-*.parquet",
                 "labelled candidate programs (`label`: correct or not), for verifier training"),
}  # fmt: skip
SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"),
         (1_000_000_000, "100M<n<1B")]  # fmt: skip


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZES if rows < limit), "n>1B")


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def card_data(facts: CardFacts, license: str | None = None) -> DatasetCardData:
    cfg = facts.cfg
    settings = cfg.card if cfg is not None else CardSettings()
    name = cfg.name if cfg is not None else facts.run.get("pipeline", "dataset")
    configs = [
        {"config_name": config, "data_files": [{"split": "train", "path": pattern}],
         **({"default": True} if config == "default" else {})}
        for split, (config, pattern, _) in CONFIGS.items() if split in facts.splits
    ]  # fmt: skip
    tags = ["synthetic", "math", "mathsynth", *([cfg.kind] if cfg else []), *settings.tags]
    return DatasetCardData(
        license=license or settings.license,
        language=settings.language,
        task_categories=settings.task_categories,
        size_categories=[size_category(facts.rows)],
        tags=list(dict.fromkeys(tags)),
        pretty_name=settings.pretty_name or f"mathsynth {name}",
        configs=configs or None,  # an empty list would declare a dataset with no files
    )


def _stages(facts: CardFacts) -> list[dict[str, Any]]:
    if facts.rates is None:
        return []
    rows = []
    for level in facts.rates["levels"]:
        top = sorted(level["reasons"].items(), key=lambda kv: -kv[1])[:3]
        rows.append({
            "name": " + ".join(level["stages"]), "in": level["in"], "dropped": level["dropped"],
            "out": level["out"], "rate": _pct(level["out"], level["in"]),
            "reasons": ", ".join(f"`{r}` {n}" for r, n in top),
        })  # fmt: skip
    return rows


def _funnel_notes(facts: CardFacts) -> list[str]:
    if facts.rates is None:
        return []
    notes = [
        f"Side split `{split}`: dropped " + ", ".join(f"`{s}` {n}" for s, n in stages.items())
        for split, stages in facts.rates["side"].items()
    ]
    if facts.rates["unplaced"]:
        notes.append("Dropped by stages outside the recorded order (no rate): " + ", ".join(
            f"`{s}` {n}" for s, n in facts.rates["unplaced"].items()))  # fmt: skip
    return notes


def _level_of(facts: CardFacts, stage: str) -> dict[str, Any] | None:
    levels = facts.rates["levels"] if facts.rates else []
    return next((lvl for lvl in levels if stage in lvl["stages"]), None)


def _dropped_line(facts: CardFacts, stage: str) -> str:
    level = _level_of(facts, stage)
    dropped = sum(facts.funnel["dropped_by_stage"].get(stage, {}).values())
    if level is None:
        return f"dropped {dropped} rows"
    return f"dropped {dropped} of {level['in']} items ({_pct(dropped, level['in'])})"


def _quality(facts: CardFacts) -> list[str]:
    cfg = facts.cfg
    if cfg is None:
        by_stage = facts.funnel["dropped_by_stage"]
        return [f"`{s}`: {_dropped_line(facts, s)}" for s in ("dedup", "near_dedup", "decontam")
                if s in by_stage] or ["Settings not recorded for this dataset."]  # fmt: skip
    lines = []
    d, near, dc = cfg.dedup, cfg.dedup.near, cfg.decontamination
    lines.append("Exact dedup (normalised question text, across the whole dataset): "
                 + (_dropped_line(facts, "dedup") if d.exact else "off") + ".")  # fmt: skip
    lines.append(
        f"Near dedup (MinHash LSH, Jaccard >= {near.threshold} over {near.unit} "
        f"{near.ngram}-grams): {_dropped_line(facts, 'near_dedup')}." if near.enabled
        else "Near dedup: off."
    )  # fmt: skip
    if d.against:
        names = ", ".join(f"`{portable(a)}`" for a in d.against)
        lines.append(f"Deduplicated against {len(d.against)} earlier dataset(s): {names}.")
    if dc.enabled:
        rule = dc.rule()
        marks = ", ".join(f"`{b.name or portable(b.path)}`" for b in dc.benchmarks)
        lines.append(
            f"Decontamination: a {rule.n}-gram shared with a benchmark test item drops the row "
            f"(numbers {'stripped' if rule.strip_numbers else 'kept'}, names "
            f"{'masked' if rule.mask_names else 'kept'}; fields: {', '.join(dc.fields)}) "
            f"against {marks or 'no benchmark'}: {_dropped_line(facts, 'decontam')}."
        )
    else:
        lines.append("Decontamination: off (rows were not checked against benchmark test sets).")
    return lines


def _distributions(facts: CardFacts) -> list[str]:
    lines = []
    for label, words in (("Question", facts.question_words), ("Solution", facts.solution_words)):
        if len(words):
            p10, p50, p90 = (int(x) for x in np.percentile(words, [10, 50, 90], method="lower"))
            lines.append(f"{label} length: median {p50} words (10th-90th percentile {p10}-{p90}).")
    if facts.answers:
        top = ", ".join(f"`{a}` ({n})" for a, n in facts.answers.most_common(5))
        lines.append(f"{len(facts.answers)} distinct answers; most frequent: {top}.")
    verifier = facts.splits.get("verifier")
    if verifier is not None:
        good = verifier.labels.get(True, 0)
        lines.append(f"Verifier split: {good} correct and {verifier.labels.get(False, 0)} "
                     f"incorrect candidate programs ({_pct(good, verifier.rows)} correct).")  # fmt: skip
    return lines or ["No rows yet."]


def _provenance(facts: CardFacts) -> tuple[list[str], list[dict[str, Any]]]:
    teachers: Counter[str] = sum((s.teachers for s in facts.splits.values()), start=Counter())
    lines = []
    if teachers:
        lines.append("Teacher model(s): " + ", ".join(
            f"`{t}` ({n} rows in all configurations)" for t, n in teachers.most_common()))  # fmt: skip
    if facts.run.get("fingerprint"):
        lines.append(f"Configuration fingerprint: `{facts.run['fingerprint']}` (a hash of "
                     "everything that changes what a run generates).")  # fmt: skip
    recorded = facts.run.get("templates") or {}
    if recorded:
        lines.append("Prompt templates of the configuration: " + ", ".join(
            f"`{n}` `{h}`" for n, h in recorded.items()) + ".")  # fmt: skip
    pairs: dict[tuple[str, str], int] = {}
    for split in facts.splits.values():
        for key, n in split.templates.items():
            pairs[key] = pairs.get(key, 0) + n
    table = [{"name": n or "(none)", "hash": h or "-", "rows": c}
             for (n, h), c in sorted(pairs.items())]  # fmt: skip
    return lines, table


def _last_run(summary: dict[str, Any] | None) -> list[str]:
    if not summary:
        return []
    s = summary
    state = s.get("state") or ("interrupted" if s.get("interrupted") else "finished")
    cost = f", about ${s['cost_usd']:.4f}" if s.get("cost_usd") is not None else ""
    return [
        f"{state} in {s.get('elapsed_s', 0):.0f} s: {s.get('seeds_read', 0)} seeds read, "
        f"{s.get('seeds_skipped_already_finished', 0)} already finished.",
        f"{int(s.get('requests', 0))} teacher requests, {int(s.get('prompt_tokens', 0))} prompt "
        f"and {int(s.get('completion_tokens', 0))} completion tokens{cost}.",
        f"{int(s.get('rows_written', 0))} rows written by it ({s.get('rows_total', 0)} in all).",
        *_all_runs(s.get("totals")),
    ]


def _all_runs(totals: dict[str, Any] | None) -> list[str]:
    """The cumulative line: every run into this output (``summary.json``'s ``totals``)."""
    if not totals:
        return []
    cost = f", about ${totals['cost_usd']:.4f}" if totals.get("cost_usd") is not None else ""
    return [
        f"All {totals.get('runs', 0)} runs into this output: {totals.get('requests', 0)} teacher "
        f"requests, {totals.get('prompt_tokens', 0)} prompt and "
        f"{totals.get('completion_tokens', 0)} completion tokens{cost}."
    ]


def render_card(facts: CardFacts, plots: dict[str, str], license: str | None = None) -> DatasetCard:
    data = card_data(facts, license)
    provenance, templates = _provenance(facts)
    seeds = facts.funnel["seeds"]
    total = sum(seeds.values())
    context = {
        "title": data.pretty_name,
        "description": facts.cfg.description.strip() if facts.cfg else "",
        "version": facts.run.get("mathsynth", "unknown"),
        "kind": facts.cfg.kind if facts.cfg else facts.run.get("pipeline", "?"),
        "splits": [
            {"config": c, "pattern": p, "content": what, "rows": facts.splits[split].rows}
            for split, (c, p, what) in CONFIGS.items() if split in facts.splits
        ],
        "plots": {name: plots.get(name) for name in PLOT_NAMES},
        "seeds": {"total": total, "rate": _pct(seeds.get("accepted", 0), total),
                  **{k: seeds.get(k, 0) for k in ("accepted", "rejected", "failed")}},
        "rows": facts.rows,
        "stages": _stages(facts),
        "funnel_notes": _funnel_notes(facts),
        "quality": _quality(facts),
        "reasons": [{"reason": f"{stage}:{why}", "n": n}
                    for stage, whys in facts.funnel["dropped_by_stage"].items()
                    for why, n in sorted(whys.items(), key=lambda kv: -kv[1])],
        "distributions": _distributions(facts),
        "provenance": provenance,
        "templates": templates,
        "reproduce": reproduce(facts),
        "last_run": _last_run(facts.summary),
    }  # fmt: skip
    return DatasetCard.from_template(data, template_path=str(TEMPLATE), **context)


def write_card(
    store: OutputStore, *, plots: bool = True, license: str | None = None
) -> dict[str, str]:
    """Rewrite ``README.md`` (and, with ``plots``, ``plots/*.png``) from the output on disk;
    returns {"card": path, <plot name>: path} (paths relative to the output)."""
    facts = gather(store)
    written = write_plots(store, facts) if plots else {}
    card = render_card(facts, written, license)
    store.write_text(CARD_FILE, str(card))
    return {"card": CARD_FILE, **written}
