"""Skywork-Math (Zeng et al. 2024): two-stage synthesis of MATH-style problems.

Stage 1 augments seed problems with three families mixed by weight (MetaMath: rephrasing,
FOBAR and self-verification backward questions, answer augmentation; Evol-Instruct: up to k
evolution steps; Xwin-style self-correcting question synthesis) and solves every question with
a chain of thought. ``coreset`` then picks a diverse core set of stage-1 problems from hard
seeds; stage 2 runs the same pipeline with ``stage: 2`` (harder prompts) on it.

Modules: ``config`` (the ``skywork:`` section), ``backward`` (FOBAR/SV by program), ``parse``,
``steps`` (plan, route, evolve chain), ``stages`` (teacher stages), ``pipeline`` (the step
list), ``coreset`` (stage-2 seeds). Answers are extracted and compared by
``orchestrator.quality.verify``. It does not dedup, write or talk to Ray; the engine does.
"""
