"""A small output dataset with known content, written through the real store (no Ray, no
teacher), for the card, plot and push tests: ``make_output(location)``.

Two commits of a TinyGSM one-step run (``configs.make_config``; its ``run.json`` as the driver
writes it): 4 kept rows, dropped rows 2 ``question_filter:no_number``, 1
``execute:runtime_error``, 1 ``dedup:duplicate``, and optionally a verifier split. So the funnel
is known: one_step 8 in, question_filter 8 -> 6, execute 6 -> 5, dedup 5 -> 4, near_dedup 4 -> 4.
It checks nothing itself.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.config import PipelineConfig
from orchestrator.core.records import Record
from orchestrator.methods.catalog import fingerprint
from orchestrator.output.card_facts import RUN_FILE, run_record
from orchestrator.output.store import Commit, FinalCommit, OutputStore
from tests.support.configs import make_config

TEMPLATE = ("tinygsm/one_step", "c81c98c0715192d5")
KEPT = [
    ("Ann has 12 red apples?", "12", "def f():\n    return 12"),
    ("Bob buys 3 and 9 more pens today?", "12", "def f():\n    return 3+9"),
    ("A farm has 2 cows and 5 more goats now?", "7", "def f():\n    x = 2\n    return x+5"),
    ("Cid reads 6 books twice daily?", "12", "def f():\n    a = 6\n    b = 2\n    return a*b"),
]


def row(i: int, question: str, seed: str, answer: str | None = None, code: str | None = None,
        source: str = "seeds.jsonl", **meta: Any) -> Record:  # fmt: skip
    return Record(
        id=f"r{i}", seed_id=seed, question=question, method="tinygsm/one-step", source=source,
        code=code, answer=answer, teacher="scripted", template=TEMPLATE[0],
        template_hash=TEMPLATE[1], meta=dict(meta),
    )  # fmt: skip


def small_config(**card: Any) -> PipelineConfig:
    cfg = make_config("http://127.0.0.1:9/v1")
    return cfg.model_copy(update={"card": cfg.card.model_copy(update=card)}) if card else cfg


def make_output(
    location: str, *, verifier: bool = False, source: str = "seeds.jsonl", tag: str = "",
    cfg: PipelineConfig | None = None,
) -> OutputStore:  # fmt: skip
    """``tag`` changes row ids (so two outputs have different commits)."""
    store = OutputStore(location)
    store.prepare()
    cfg = cfg or small_config()  # run.json as the driver writes it
    store.write_json(RUN_FILE, {"pipeline": cfg.name, "fingerprint": fingerprint(cfg),
                                **run_record(cfg)})  # fmt: skip
    kept = [row(i, q, "s1" if i < 3 else "s3", a, c, source) for i, (q, a, c) in enumerate(KEPT)]
    for r in kept:
        r.id += tag
    dropped = [
        row(10, "Ann has some red apples?", "s1", source=source).reject("question_filter:no_number"),
        row(11, "Bob buys pens?", "s2", source=source).reject("question_filter:no_number"),
        row(12, "Dan has 4 cats?", "s2", "x", "1/0", source).reject("execute:runtime_error"),
        row(13, "ANN has 12 red apples?", "s3", "12", "x", source).reject("dedup:duplicate", "r0"),
    ]  # fmt: skip
    side = {"verifier": [row(20 + i, KEPT[0][0], "s1", "12", "x", source, label=i == 0)
                         for i in range(3)]} if verifier else {}  # fmt: skip
    commit(store, Commit(seeds={"s1": "accepted", "s2": "rejected"}, rows=kept[:3],
                         rejected=dropped[:3], side=side))  # fmt: skip
    commit(store, Commit(seeds={"s3": "accepted", "s4": "failed"}, rows=kept[3:],
                         rejected=dropped[3:], failures={"s4": "HTTP 400"}))  # fmt: skip
    return store


def commit(store: OutputStore, candidates: Commit) -> str:
    """A worker's candidate commit, then the finalizer's commit of all of it (as a run with
    nothing to deduplicate does); returns the final commit's id."""
    cid, rows = store.write_candidates(candidates)
    final = FinalCommit(seeds=candidates.seeds, rows=rows, failures=candidates.failures,
                        candidates=[cid])  # fmt: skip
    fid = store.write_final(final)
    store.remove_candidates([cid])
    return fid
