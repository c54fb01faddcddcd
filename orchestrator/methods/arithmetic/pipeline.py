"""The arithmetic set as engine steps: shard descriptors in, generated items out, no teacher.

``make_seeds(cfg)`` cuts ``arithmetic.size`` items into shards of ``items_per_shard``; each
shard is one seed record (id: a hash of the base seed, the shard index, its item count and the
generation settings) whose ``meta`` says what to draw. The engine chunks, resumes and dedups
these like any seeds: a finished shard is never drawn again, a larger ``size`` only adds
shards, and changed settings give new shard ids. ``GenerateShard`` turns a shard into its
items (``generate.generate_shard``), each a row with the instruction as ``question``, the
exact ``answer`` (also ``gold_answer``), the step-by-step ``solution``, the chat form and the
operands in ``meta``. There are no prompt templates and nothing to execute.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from orchestrator.core.records import Record, content_hash
from orchestrator.core.sampling import SamplingParams
from orchestrator.engine.context import StepContext
from orchestrator.engine.steps import Step, now_iso
from orchestrator.methods.method import Method

from .config import ArithmeticConfig
from .generate import generate_shard

if TYPE_CHECKING:
    from orchestrator.core.config import PipelineConfig

SOURCE = "arithmetic"


def make_seeds(cfg: PipelineConfig) -> list[Record]:
    """One shard-descriptor seed per ``items_per_shard`` items of ``arithmetic.size``."""
    a = cfg.arithmetic
    settings = content_hash(a.model_dump(exclude={"size"}))
    shards = math.ceil(a.size / a.items_per_shard)
    seeds = []
    for shard in range(shards):
        count = min(a.items_per_shard, a.size - shard * a.items_per_shard)
        seeds.append(
            Record(
                id=content_hash("arithmetic-shard", a.seed, shard, count, settings),
                question=f"arithmetic shard {shard}: {count} items from seed {a.seed}",
                source=SOURCE,
                meta={"shard": shard, "count": count, "base_seed": a.seed},
            )
        )
    return seeds


class GenerateShard:
    """Shard-descriptor seed -> its arithmetic items as records."""

    name = "arithmetic"

    def __init__(self, cfg: ArithmeticConfig) -> None:
        self.cfg = cfg

    async def arun(self, records: list[Record], ctx: StepContext) -> list[Record]:
        out = []
        for seed in records:
            shard, count = seed.meta["shard"], seed.meta["count"]
            created = now_iso()
            for index, item in enumerate(generate_shard(self.cfg, shard, count)):
                ctx.counters.add(self.name, f"task:{item.task}")
                out.append(
                    Record(
                        id=content_hash("arithmetic", seed.id, index, item.question),
                        question=item.question, seed_id=seed.id,
                        method=f"arithmetic/{item.task}", source=SOURCE, answer=item.answer,
                        gold_answer=item.answer, created_at=created,
                        meta={"task": item.task, "a": item.a, "b": item.b, "shard": shard,
                              "index": index, "solution": item.solution,
                              "messages": [{"role": "user", "content": item.question},
                                           {"role": "assistant", "content": item.solution}]},
                    )
                )  # fmt: skip
            ctx.counters.add(self.name, "produced", count)
        return out


def build_steps(cfg: PipelineConfig) -> list[Step]:
    return [GenerateShard(cfg.arithmetic)]


def template_names(cfg: PipelineConfig) -> list[str]:
    return []


def request_plan(cfg: PipelineConfig) -> list[tuple[float, SamplingParams]]:
    return []


METHOD = Method(
    name="arithmetic",
    build_steps=build_steps,
    config=ArithmeticConfig,
    needs_teacher=False,
    template_names=template_names,
    request_plan=request_plan,
    make_seeds=make_seeds,
    # operands as text: up to 64 digits, beyond int64
    meta={"task": str, "a": str, "b": str, "shard": int, "index": int},
)
