"""TinyGSM (Liu et al. 2023): GSM8K-like problems with Python solutions from a teacher model.

Modules: ``config`` (the pipeline file's ``tinygsm:`` section), ``replies`` (reply parsing,
with ``reply_text`` cleaning questions and code), ``function_form`` (program normalisation,
with ``program_ast`` reading the program's syntax tree), ``stages`` (one-step / two-step
teacher stages), ``execute`` (running a program and keeping numeric results), ``verifier``
(labelled candidate programs) and ``pipeline`` (the steps a config builds). Prompt templates
live in ``prompts/tinygsm/``. The package does not send requests, dedup or write: the engine's
generic parts do that.
"""
