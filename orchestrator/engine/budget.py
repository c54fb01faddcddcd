"""``--max-cost``: stop sending new work before the teacher's spend passes a budget.

``CostBudget.check`` is called with the run's teacher counters every time the driver polls and
whenever a chunk comes back (its worker pushes its counters before replying). It
prices the paid tokens so far (``orchestrator.teacher.pricing``; replies from the reply log cost
nothing) and estimates what the seeds already handed out will still cost (the average cost of a
finished seed times the seeds in flight). Once spend plus that estimate reaches the budget, no
new chunk is handed out: the chunks in flight finish, are committed and finalized, and the run
ends saying so; once spend itself reaches the budget, the workers are asked to stop and commit
what they finished. Seeds not run are left for a later run (with a larger budget).

It only decides; the driver's loop stops the work.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.teacher.pricing import Price


@dataclass
class CostBudget:
    limit_usd: float
    price: Price
    exhausted: bool = False  # no new work
    spent_usd: float = 0.0

    def check(self, teacher: dict[str, float], seeds_done: int, seeds_in_flight: int) -> bool:
        """True when the workers must stop now (spend reached the budget); sets
        ``exhausted`` when no new work may start."""
        self.spent_usd = self.price.cost(
            teacher.get("prompt_tokens", 0), teacher.get("completion_tokens", 0)
        )
        per_seed = self.spent_usd / seeds_done if seeds_done else 0.0
        if self.spent_usd + per_seed * seeds_in_flight >= self.limit_usd:
            self.exhausted = True
        return self.spent_usd >= self.limit_usd

    def message(self) -> str:
        return (
            f"stopped by --max-cost: ${self.spent_usd:.4f} spent of ${self.limit_usd:.4f}; "
            "run again with a larger budget to go on"
        )
