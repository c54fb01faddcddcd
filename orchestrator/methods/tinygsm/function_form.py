"""Rewrite a teacher's program into TinyGSM's stored function form.

``to_tinygsm_function`` produces ``def simple_math_problem() -> int:`` + docstring (the
question) + body + ``return result``, cutting the body's source text out of the program so
comments survive (``ast.unparse`` only where the text cannot be reused). Deciding which
function holds the solution and which statements are driver code is ``program_ast``'s job.

This module does not parse teacher replies (``replies`` does), does not execute, sandbox or
judge programs (a program that parses but raises or returns a string is the sandbox's
business), and does not call teachers.
"""

from __future__ import annotations

import ast
import re
import textwrap

from orchestrator.methods.tinygsm.program_ast import (
    assigns_result,
    ast_parse,
    defaults,
    find_main,
    is_docstring,
    is_driver,
    parses,
)

FUNCTION_NAME = "simple_math_problem"

__all__ = ["FUNCTION_NAME", "ProgramFormatError", "to_tinygsm_function"]


class ProgramFormatError(ValueError):
    """The teacher's program cannot be turned into valid Python (callers drop it as
    ``syntax_error``)."""


def _docstring_literal(question: str, indent: str) -> str:
    """A triple-quoted docstring whose value is ``question`` (backslashes, quotes and control
    characters escaped), laid out TinyGSM-style with the text on its own indented lines."""
    text = question.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    text = "".join(
        c if c in "\n\t" or (c.isprintable() and c not in "\u2028\u2029") else _escape_char(c)
        for c in text
    )
    body = "\n".join(indent + line if line.strip() else "" for line in text.split("\n"))
    return f'{indent}"""\n{body}\n{indent}"""'


def _escape_char(c: str) -> str:
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _node_start(node: ast.stmt) -> int:
    """First source line of a statement, decorators included (1-based)."""
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno] + [d.lineno for d in decorators])


def _has_multiline_string(nodes: list[ast.stmt]) -> bool:
    """Whether a string literal spans lines (re-indenting the source would change it)."""
    for node in nodes:
        for sub in ast.walk(node):
            is_string = isinstance(sub, ast.JoinedStr) or (
                isinstance(sub, ast.Constant) and isinstance(sub.value, (str, bytes))
            )
            if is_string and (sub.end_lineno or sub.lineno) != sub.lineno:
                return True
    return False


def _shares_a_line(node: ast.stmt, siblings: list[ast.stmt]) -> bool:
    end = node.end_lineno or node.lineno
    return any(
        other is not node
        and other.lineno <= end
        and (other.end_lineno or other.lineno) >= node.lineno
        for other in siblings
    )


def _body_source(lines: list[str], nodes: list[ast.stmt], siblings: list[ast.stmt]) -> str:
    """Source of statements ``nodes`` (taken from ``siblings``, the block they sit in), each
    dedented on its own, with the comment lines directly above each kept. A statement sharing
    a line with another (``a = 1; b = 2``) is regenerated with ``ast.unparse`` instead, and so
    is everything when a multi-line string would change value by re-indenting."""
    if not nodes:
        return ""
    if _has_multiline_string(nodes):
        return "\n".join(ast.unparse(n) for n in nodes)
    pieces: list[str] = []
    for node in nodes:
        start = _node_start(node)
        end = node.end_lineno or node.lineno
        if _shares_a_line(node, siblings):
            pieces.append(ast.unparse(node))
            continue
        first = start
        while first > 1 and lines[first - 2].strip().startswith("#"):
            first -= 1
        text = textwrap.dedent("\n".join(lines[first - 1 : end])).strip("\n")
        pieces.append(text if parses(text) else ast.unparse(node))
    return "\n".join(pieces)


def to_tinygsm_function(question: str, program: str) -> str:
    """Rewrite ``program`` as TinyGSM's stored form with ``question`` as the docstring::

        def simple_math_problem() -> int:
            \"\"\"
            <question>
            \"\"\"
            <body>
            return result

    A program that already defines ``simple_math_problem`` (or exactly one zero-argument
    function plus driver code) keeps its body, with its docstring replaced; imports and
    constants defined above it move into the body. Otherwise the top-level statements become
    the body. Top-level ``print(...)`` calls and bare strings are dropped. ``return result`` is
    appended when the body does not end with a ``return`` and assigns ``result``. Comments are
    kept. Nothing is executed.

    Raises ``ProgramFormatError`` when the program is not valid Python or leaves no body.
    """
    source = textwrap.dedent((program or "").replace("\r\n", "\n").replace("\r", "\n"))
    source = re.sub(r"^[ \t]+", lambda m: m.group(0).expandtabs(4), source, flags=re.MULTILINE)
    source = source.strip("\n")
    if not source.strip():
        raise ProgramFormatError("empty program")
    try:
        tree = ast_parse(source)
    except (SyntaxError, ValueError) as err:
        line = getattr(err, "lineno", None)
        raise ProgramFormatError(f"program does not parse (line {line}): {err}") from err
    lines = source.split("\n")

    main = find_main(tree, FUNCTION_NAME)
    if main is not None:
        # Imports, helper definitions and constants above it move into the body.
        prelude = [
            n
            for n in tree.body
            if n is not main
            and not is_driver(n, {main.name})
            and (
                isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))
                or (isinstance(n, (ast.Assign, ast.AnnAssign)) and n.lineno < main.lineno)
            )
        ]
        body_nodes = list(main.body)
        if body_nodes and is_docstring(body_nodes[0]):
            body_nodes = body_nodes[1:]
        if not body_nodes:
            raise ProgramFormatError(f"function {main.name} has no body besides its docstring")
        pieces = [_body_source(lines, prelude, tree.body)]
        # Parameters with defaults become local variables.
        params = [ast.parse(f"{n} = {ast.unparse(d)}").body[0] for n, d in defaults(main) or []]
        pieces.extend(ast.unparse(n) for n in params)
        if main.name != FUNCTION_NAME and any(
            isinstance(n, ast.Name) and n.id == main.name for b in body_nodes for n in ast.walk(b)
        ):
            # The body refers to its old name (recursion): keep that name bound.
            pieces.append(f"{main.name} = {FUNCTION_NAME}")
        if body_nodes[0].lineno == main.lineno:
            # "def f(): return 1": the body shares the def line.
            pieces.append("\n".join(ast.unparse(n) for n in body_nodes))
        else:
            pieces.append(_body_source(lines, body_nodes, main.body))
        body = "\n".join(p for p in pieces if p)
        nodes = prelude + params + body_nodes
    else:
        nodes = [n for n in tree.body if not is_driver(n, set())]
        body = _body_source(lines, nodes, tree.body)

    if not nodes or not body.strip():
        raise ProgramFormatError("program has no statements besides prints and docstrings")
    if not isinstance(nodes[-1], ast.Return) and assigns_result(nodes):
        body += "\nreturn result"

    header = f"def {FUNCTION_NAME}() -> int:"
    docstring = _docstring_literal(question, "    ")
    indented = textwrap.indent(body, "    ", lambda line: bool(line.strip()))
    out = f"{header}\n{docstring}\n{indented}\n"
    if not parses(out):
        # Last resort: regenerate the body from the AST (loses comments, always re-indents).
        body = "\n".join(ast.unparse(n) for n in nodes)
        if not isinstance(nodes[-1], ast.Return) and assigns_result(nodes):
            body += "\nreturn result"
        out = f"{header}\n{docstring}\n{textwrap.indent(body, '    ')}\n"
        if not parses(out):
            raise ProgramFormatError("could not produce a valid simple_math_problem function")
    return out
