"""The dataset's plots, as PNG files in ``plots/`` of the output, referenced by the card.

Five plots: the funnel (items reaching each stage, and rows kept), question and solution length
histograms (words, i.e. whitespace-separated tokens, per train row), the answer distribution (the
most frequent answers) and rejections by reason. ``plot_data(facts)`` says what each plot
shows (pure data, tested directly); ``render`` draws one with matplotlib's Agg backend (no
display, no global pyplot state) to PNG bytes; ``write_plots`` writes those that have data
through the store (local or object store) and removes stale ones. This module gathers nothing
from disk itself (``output.card_facts`` does) and writes no card.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np

from orchestrator.output.card_facts import CardFacts
from orchestrator.output.store import OutputStore

PLOT_DIR = "plots"
NAMES = ("funnel", "question_length", "solution_length", "answers", "rejections")
TOP_ANSWERS = 20
TOP_REASONS = 25


@dataclass(frozen=True)
class PlotData:
    kind: Literal["bar", "hist"]
    title: str
    xlabel: str
    ylabel: str
    labels: list[str]  # bar: one per bar
    values: list[float]  # bar: heights; hist: the samples

    @property
    def empty(self) -> bool:
        return not self.values


def _funnel(facts: CardFacts) -> PlotData:
    labels: list[str] = []
    values: list[float] = []
    if facts.rates is not None:
        for level in facts.rates["levels"]:
            labels.append(" + ".join(level["stages"]))
            values.append(level["in"])
    if values or facts.rows:
        labels.append("kept")
        values.append(facts.rows)
    return PlotData("bar", "Funnel: items reaching each stage", "", "items", labels, values)


def _answers(facts: CardFacts) -> PlotData:
    top = facts.answers.most_common(TOP_ANSWERS)
    labels = [a if len(a) <= 24 else a[:21] + "..." for a, _ in top]
    values: list[float] = [n for _, n in top]
    rest = sum(facts.answers.values()) - sum(values)
    if rest:
        labels.append(f"other ({len(facts.answers) - len(top)} answers)")
        values.append(rest)
    title = f"Answers: the {len(top)} most frequent of {len(facts.answers)} distinct"
    return PlotData("bar", title, "", "train rows", labels, values)


def _rejections(facts: CardFacts) -> PlotData:
    reasons = [
        (f"{stage}:{why}", n)
        for stage, whys in facts.funnel["dropped_by_stage"].items()
        for why, n in whys.items()
    ]
    reasons.sort(key=lambda item: (-item[1], item[0]))
    top = reasons[:TOP_REASONS]
    labels, values = [r for r, _ in top], [float(n) for _, n in top]
    if len(reasons) > len(top):
        labels.append(f"other ({len(reasons) - len(top)} reasons)")
        values.append(float(sum(n for _, n in reasons[len(top) :])))
    return PlotData("bar", "Rejections by reason", "", "dropped rows", labels, values)


def plot_data(facts: CardFacts) -> dict[str, PlotData]:
    return {
        "funnel": _funnel(facts),
        "question_length": PlotData(
            "hist", "Question length", "words", "train rows", [],
            facts.question_words.tolist(),
        ),
        "solution_length": PlotData(
            "hist", "Solution length (program or worked solution)", "words", "train rows", [],
            facts.solution_words.tolist(),
        ),
        "answers": _answers(facts),
        "rejections": _rejections(facts),
    }  # fmt: skip


def render(data: PlotData) -> bytes:
    """``data`` drawn as a PNG (800x450 pixels at 100 dpi, taller for many bars)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    height = 4.5 if data.kind == "hist" else max(4.5, 1.2 + 0.28 * len(data.labels))
    fig = Figure(figsize=(8, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if data.kind == "hist":
        samples = np.asarray(data.values)
        bins = np.arange(samples.min(), samples.max() + 2) if np.ptp(samples) < 60 else 50
        ax.hist(samples, bins=bins, color="#4c72b0")
        ax.axvline(float(np.median(samples)), color="#c44e52", linestyle="--", label="median")
        ax.legend()
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:  # horizontal bars, first label on top
        y = np.arange(len(data.labels))
        ax.barh(y, data.values, color="#4c72b0")
        ax.set_yticks(y, data.labels)
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for i, v in enumerate(data.values):
            ax.annotate(f"{v:,.0f}", (v, i), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)  # fmt: skip
    ax.set_title(data.title)
    ax.set_xlabel(data.xlabel if data.kind == "hist" else data.ylabel)
    if data.kind == "hist":
        ax.set_ylabel(data.ylabel)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def write_plots(store: OutputStore, facts: CardFacts) -> dict[str, str]:
    """Write every plot that has data to ``plots/<name>.png``; returns {name: path in the
    output}. A plot that has no data any more is removed (the card must not link to it)."""
    written: dict[str, str] = {}
    for name, data in plot_data(facts).items():
        rel = f"{PLOT_DIR}/{name}.png"
        if data.empty:
            if store.exists(rel):
                store.storage.remove([store.storage.path(rel)])
            continue
        store.storage.put_bytes(rel, render(data))
        written[name] = rel
    return written
