"""What happens when a run finds its output written under another configuration.

``_mathsynth/run.json`` records the configuration an output was written with: two fingerprints
(``orchestrator.methods.catalog``: what the teacher saw, and what we did with its replies), the
resolved configuration and the mathsynth version. When a run's fingerprint differs and the
output holds commits, the dataset is **rebuilt**: its rows, dropped rows, side splits and
commits are removed (``OutputStore.reset_dataset``) and every seed runs again, each request
answered from the reply log when it was asked before (``orchestrator.output.replies``). So a
changed filter, dedup, decontamination or sandbox setting costs no request at all, and a changed
prompt or model costs requests only for what changed. The reply log and the run history stay.
With ``--allow-config-change`` the rows already written are kept instead (configurations mix).

The old fingerprint stays in ``run.json`` until the removal is complete, so a rebuild killed
halfway is simply done again by the next run.

It decides and removes; it does not run seeds.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.core.config import PipelineConfig
from orchestrator.methods.catalog import fingerprint, processing_fingerprint, teacher_fingerprint
from orchestrator.output.card_facts import run_record
from orchestrator.output.store import OutputStore

RUN_FILE = "_mathsynth/run.json"
log = logging.getLogger("mathsynth")


def configuration(cfg: PipelineConfig) -> dict[str, Any]:
    """``run.json``: the fingerprints, and the resolved configuration, template hashes and
    mathsynth version (``card_facts.run_record``; the dataset card reads them)."""
    return {
        "pipeline": cfg.name,
        "fingerprint": fingerprint(cfg),
        "teacher_fingerprint": teacher_fingerprint(cfg),
        "processing_fingerprint": processing_fingerprint(cfg),
        **run_record(cfg),
    }


def what_changed(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """The parts of the configuration that differ: ``teacher`` (prompts, model, method
    settings) and/or ``processing`` (filters, decontamination, dedup, sandbox)."""
    if previous is None or previous.get("fingerprint") == current["fingerprint"]:
        return []
    parts = [
        part
        for part in ("teacher", "processing")
        if previous.get(f"{part}_fingerprint") != current[f"{part}_fingerprint"]
    ]
    return parts or ["teacher", "processing"]


def check_configuration(store: OutputStore, cfg: PipelineConfig, allow_change: bool) -> str | None:
    """Rebuild the dataset if the configuration changed (see the module docstring); returns
    what was done, for the summary, or None."""
    current = configuration(cfg)
    changed = what_changed(store.read_json(RUN_FILE), current)
    note = None
    if changed and store.has_commits():
        what = " and ".join({"teacher": "what the teacher is asked", "processing":
                             "how replies are filtered and deduplicated"}[p] for p in changed)  # fmt: skip
        if allow_change:
            note = f"configuration changed ({what}); kept the rows already written"
        else:
            removed = store.reset_dataset()
            note = (
                f"configuration changed ({what}): the dataset was rebuilt from the reply log "
                f"({removed} files of the previous dataset removed)"
            )
        log.warning("%s: %s", store.url, note)
    store.write_json(RUN_FILE, current)
    return note
