"""The plots: what each one shows comes from the rows on disk, the PNGs decode, ``mathsynth
stats --plot`` writes and prints them, and a plot with nothing left to show is removed."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from orchestrator.output.card_facts import gather
from orchestrator.output.plots import plot_data, render, write_plots
from orchestrator.output.store import OutputStore
from tests.support.cli import run_cli
from tests.support.small_output import KEPT, make_output


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()  # raises on a truncated or corrupt file
    return image


def test_plot_data_comes_from_the_rows(tmp_path: Path) -> None:
    facts = gather(make_output(str(tmp_path / "out")))
    plots = plot_data(facts)
    funnel = plots["funnel"]
    assert funnel.labels == ["one_step", "question_filter", "program_filter", "execute",
                             "dedup", "near_dedup", "kept"]  # fmt: skip
    assert funnel.values == [8, 8, 6, 6, 5, 4, 4]  # no program of these was refused statically
    assert sorted(plots["question_length"].values) == sorted(len(q.split()) for q, _, _ in KEPT)
    assert sorted(plots["solution_length"].values) == sorted(len(c.split()) for _, _, c in KEPT)
    assert plots["answers"].labels == ["12", "7"] and plots["answers"].values == [3, 1]
    rejections = plots["rejections"]
    assert rejections.labels == ["question_filter:no_number", "dedup:duplicate",
                                 "execute:runtime_error"]  # fmt: skip
    assert rejections.values == [2, 1, 1]
    for name, data in plots.items():
        image = decode(render(data))
        assert image.format == "PNG" and image.width == 800, name
        assert image.height == 450 if data.kind == "hist" else image.height >= 450
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 10, name  # something was drawn


def test_stats_plot_writes_prints_and_removes_stale_plots(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = make_output(str(out))
    code, text = run_cli("stats", str(out), "--plot", timeout=120)
    assert code == 0, text
    printed = [line for line in text.splitlines() if line.startswith(str(out))]
    assert printed[0] == str(out / "README.md")
    assert sorted(printed[1:]) == sorted(str(out / "plots" / f"{n}.png") for n in
                                         ("funnel", "question_length", "solution_length",
                                          "answers", "rejections"))  # fmt: skip
    for path in printed[1:]:
        assert decode(Path(path).read_bytes()).format == "PNG"
    assert "![rejections by reason](plots/rejections.png)" in (out / "README.md").read_text()
    # once no row is dropped, the rejections plot goes, and the card no longer links to it
    store.storage.remove(store.files("rejected"))
    written = write_plots(OutputStore(str(out)), gather(store))
    assert "rejections" not in written and not (out / "plots" / "rejections.png").exists()
