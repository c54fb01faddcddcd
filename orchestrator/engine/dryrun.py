"""``--dry-run``: what a job would send and cost, without calling the teacher or starting Ray.

It renders the first teacher step's prompts for the first N seeds (printing one), measures
their length, and multiplies out the method's request plan (requests per seed for each teacher
step, upper bounds: every generated item passes the filters) over all seeds. Prompt tokens are
approximated as characters / 4 (no tokenizer is downloaded); completion tokens are bounded by
each step's ``max_tokens``, so the cost is given as a range [prompt-only, upper bound]. Later
steps' prompts are assumed as long as the first step's. It does not run anything.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from orchestrator.core.config import PipelineConfig
from orchestrator.core.seeds import Seeds
from orchestrator.engine.steps import TeacherStep
from orchestrator.methods.catalog import build_steps, method_of
from orchestrator.teacher.pricing import price_for

CHARS_PER_TOKEN = 4.0


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate(cfg: PipelineConfig, seeds: Seeds, sample: int = 5) -> dict[str, Any]:
    plan = method_of(cfg).request_plan(cfg)
    requests = sum(per_seed for per_seed, _ in plan) * len(seeds)
    completion_max = sum(per_seed * p.max_tokens for per_seed, p in plan) * len(seeds)
    first = next((s for s in build_steps(cfg) if isinstance(s, TeacherStep)), None)
    prompts = (
        [stage.prompt(seed) for seed in itertools.islice(seeds, sample) for stage in first.stages]
        if first
        else []
    )
    # Methods whose teacher calls are nested (a tool loop) have no top-level prompt to render.
    per_prompt = sum(approx_tokens(p) for p in prompts) / len(prompts) if prompts else None
    prompt_tokens = per_prompt * requests if per_prompt is not None else None
    price = price_for(cfg.teacher.model, cfg.teacher.price) if cfg.teacher else None
    can_cost = price is not None and prompt_tokens is not None
    return {
        "seeds": len(seeds),
        "sampled_seeds": min(sample, len(seeds)) if prompts else 0,
        "requests": math.ceil(requests),
        "prompt_tokens_per_request": round(per_prompt, 1) if per_prompt is not None else None,
        "prompt_tokens": math.ceil(prompt_tokens) if prompt_tokens is not None else None,
        "completion_tokens_max": math.ceil(completion_max),
        "cost_usd_min": round(price.cost(prompt_tokens, 0), 4) if can_cost else None,
        "cost_usd_max": round(price.cost(prompt_tokens, completion_max), 4) if can_cost else None,
        "teacher": cfg.teacher.model if cfg.teacher else None,
        "example_prompt": prompts[0] if prompts else None,
    }
