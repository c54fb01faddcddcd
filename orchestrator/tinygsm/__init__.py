"""TinyGSM (Liu et al. 2023): GSM8K-like problems with Python solutions from a teacher model.

This package holds the pieces specific to TinyGSM's pipeline: reply parsing and program
normalisation (``parse``). Prompt templates live in ``prompts/tinygsm/``. It does not call
teachers, run programs, filter or deduplicate; the engine's generic stages do that.
"""

from orchestrator.tinygsm.parse import (
    END_OF_PROGRAM,
    END_OF_QUESTION,
    FUNCTION_NAME,
    ParseResult,
    ProgramFormatError,
    parse_one_step,
    parse_program,
    parse_questions,
    to_tinygsm_function,
)

__all__ = [
    "END_OF_PROGRAM",
    "END_OF_QUESTION",
    "FUNCTION_NAME",
    "ParseResult",
    "ProgramFormatError",
    "parse_one_step",
    "parse_program",
    "parse_questions",
    "to_tinygsm_function",
]
