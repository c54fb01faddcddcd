"""``ProgramFilter``: drop TinyGSM programs that do more than arithmetic, before they run.

A TinyGSM program computes a number. One that imports ``urllib`` or ``os``, opens files, reads
input or reaches the interpreter's internals is not training data, whatever the sandbox lets it
do, so it is dropped on its syntax tree with one of these reasons (counted as
``program_filter/dropped:<reason>``; the detail names the offending name and line):

* ``disallowed_import``: an import of a module outside ``ALLOWED_MODULES`` (math, fractions,
  decimal, statistics, itertools, functools, collections, numbers, operator, datetime, ...),
  or a relative import;
* ``disallowed_builtin``: a use (call or reference, so ``f = open`` counts) of a built-in
  outside ``ALLOWED_BUILTINS`` that the program does not define itself (``open``, ``exec``,
  ``eval``, ``compile``, ``__import__``, ``input``, ``getattr``, ``globals``, ``vars``, ...);
* ``dunder_attribute``: any ``x.__name__``-style attribute (the way from a value to the
  interpreter's internals: ``().__class__.__subclasses__()``) or a dunder name other than
  ``__name__`` (for ``if __name__ == "__main__":``).

Method calls on values (``"".join``, ``xs.append``, ``math.floor``) are allowed. A program that
does not parse is left alone (it fails in the sandbox, where verifier candidates are meant to
fail). This is a data filter, not the security boundary: the sandbox is. It does NOT run,
rewrite or time programs.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Iterator

from orchestrator.core.records import Record
from orchestrator.core.stage import Stage
from orchestrator.methods.tinygsm.program_ast import ast_parse

ALLOWED_MODULES = frozenset({
    "math", "cmath", "fractions", "decimal", "statistics", "itertools", "functools",
    "collections", "numbers", "operator", "datetime", "calendar", "typing",
})  # fmt: skip
ALLOWED_BUILTINS = frozenset({
    "abs", "all", "any", "bool", "chr", "complex", "dict", "divmod", "enumerate", "filter",
    "float", "format", "frozenset", "int", "isinstance", "iter", "len", "list", "map", "max",
    "min", "next", "ord", "pow", "print", "range", "reversed", "round", "set", "slice",
    "sorted", "str", "sum", "tuple", "zip", "True", "False", "None", "Ellipsis",
    "NotImplemented", "ValueError", "ZeroDivisionError", "ArithmeticError", "TypeError",
    "Exception", "StopIteration", "IndexError", "KeyError", "OverflowError", "bin", "hex",
    "oct", "callable", "issubclass", "type", "object", "super", "property", "staticmethod",
    "classmethod", "hash", "id", "repr", "ascii", "bytes", "bytearray", "__name__",
})  # fmt: skip
_BUILTIN_NAMES = frozenset(vars(builtins))


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the program binds (definitions, parameters, assignment targets, imports)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _import_problem(node: ast.Import | ast.ImportFrom) -> str | None:
    if isinstance(node, ast.ImportFrom):
        if node.level or node.module is None:
            return "relative import"
        modules = [node.module]
    else:
        modules = [alias.name for alias in node.names]
    bad = [m for m in modules if m.split(".")[0] not in ALLOWED_MODULES]
    return f"import {bad[0]}" if bad else None


def check_program(source: str) -> tuple[str, str] | None:
    """``(reason, detail)`` for a program to drop, None to keep it (or if it does not parse)."""
    try:
        tree = ast_parse(source)
    except (SyntaxError, ValueError):
        return None
    bound = _bound_names(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            problem = _import_problem(node)
            if problem:
                return "disallowed_import", f"{problem} at line {line}"
        elif isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            return "dunder_attribute", f".{node.attr} at line {line}"
        elif isinstance(node, ast.Name):
            name = node.id
            if name.startswith("__") and name != "__name__":
                return "dunder_attribute", f"{name} at line {line}"
            if name in _BUILTIN_NAMES and name not in ALLOWED_BUILTINS and name not in bound:
                return "disallowed_builtin", f"{name} at line {line}"
    return None


class ProgramFilter(Stage):
    """Drops records whose ``code`` fails ``check_program`` (a ``Filter`` that also stores the
    offending name and line as the reject detail)."""

    name = "program_filter"

    def run(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            self.counters.add(self.name, "seen")
            verdict = check_program(record.code or "")
            if verdict is None:
                self.counters.add(self.name, "kept")
                yield record
            else:
                self.drop(record, *verdict)
