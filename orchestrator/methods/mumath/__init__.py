"""MuMath-Code (Yin et al. 2024): multi-perspective question augmentation with code-nested
solutions from a tool loop.

Each seed yields the original question, rephrasings, altered questions (expression replacement,
a harder variant), a FOBAR backward question (by program) and a BF-Trans question (the backward
question rewritten forward). Every question is solved ``samples_per_question`` times by the
teacher in a tool loop (``toolloop``: reasoning, a ```python block, the sandbox's ```output,
continue) or, for stage-1 data, as a plain chain of thought; a solution is kept if its last
``\\boxed{}`` matches the gold answer, or, without one, the samples' majority answer.

Modules: ``config``, ``stages`` (plan and question stages), ``toolloop`` (one solution),
``solve`` (samples and selection), ``pipeline``. It does not dedup, write or talk to Ray.
"""
