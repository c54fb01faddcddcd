"""mathsynth: synthetic math-reasoning data on Ray, driven by a teacher LLM.

The package is the engine (``engine``), its stages, teachers, sandbox, dedup, writer, progress
display and CLI. It does not contain prompts, pipelines or seed files: those live as data files
(``prompts/``, ``pipelines/``, ``seeds/``) found through ``orchestrator.core.resources``.
"""

__version__ = "0.1.0"
