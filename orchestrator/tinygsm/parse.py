"""Parse TinyGSM teacher replies and normalise programs into TinyGSM's stored function form.

Replies follow the ``prompts/tinygsm/*.j2`` formats: questions end with ``<|endofquestion|>``
and programs with ``<|endofprogram|>``. Parsing is tolerant of what real models add (leading
prose, "Problem 2:" / "1." / "Question:" labels, Markdown emphasis and code fences, stray
whitespace) and strict about what cannot be recovered: a pair cut off by the token limit is
dropped, never half-used. Every item that could not be used leaves one short reason string in
``ParseResult.errors`` so the engine can count rejections by reason:

- ``empty_question``: a question marker with no question text before it;
- ``missing_program``: a question with no program (empty program, or two questions in a row);
- ``missing_marker``: a program marker whose segment has no question marker and no fence or
  ``def`` line to split on;
- ``truncated``: text after the last complete pair that starts another item (a cut-off reply);
- ``no_pairs`` / ``no_questions``: the reply gave no item and no other reason explains it.

``to_tinygsm_function`` rewrites a program into the stored form
``def simple_math_problem() -> int:`` + docstring (the question) + body + ``return result``.

This module does not execute, sandbox or judge programs (a program that parses but raises or
returns a string is the sandbox's business), does not filter or deduplicate questions, and does
not call teachers.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Any

END_OF_QUESTION = "<|endofquestion|>"
END_OF_PROGRAM = "<|endofprogram|>"
FUNCTION_NAME = "simple_math_problem"

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


class ProgramFormatError(ValueError):
    """The teacher's program cannot be turned into valid Python (callers drop it as
    ``syntax_error``)."""


@dataclass
class ParseResult:
    """Items parsed from one reply plus one reason string per unusable item.

    For ``parse_one_step`` items are ``(question, program_source)`` pairs; for
    ``parse_questions`` they are question strings."""

    items: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- text cleaning -------------------------------------------------------------------------

# A numbering label at the start of a line: "Problem 2:", "**Question 3.**", "### Q4)", "5.",
# "(6)", "Question:", "New problem #7 -", or "**Problem 8**" alone on its line. Decimals such
# as "12.5 kg" are not labels: a label's "N." must be followed by whitespace or a line end.
_LABEL = re.compile(
    r"""^[ \t]*(?:\#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*
    (?:
        (?:new[ \t]+|similar[ \t]+|generated[ \t]+)?
        (?:problem|question|q)[ \t]*\#?[ \t]*\d*[ \t]*(?:[:.)]|(?<=[\s\d])-)
      | (?:problem|question)[ \t]*\#?[ \t]*\d+(?=[ \t]*(?:\*\*|__)?[ \t]*$)
      | \(?\d{1,3}[.)](?=\s|$)
    )
    [ \t]*(?:\*\*|__)?[ \t]*""",
    re.IGNORECASE | re.MULTILINE | re.VERBOSE,
)
_FENCE_LINE = re.compile(r"^[ \t]*(```|~~~)[\w+-]*[ \t]*$", re.MULTILINE)
_FENCED_BLOCK = re.compile(
    r"(?P<fence>```|~~~)[ \t]*(?P<lang>[\w+-]*)[^\n]*\n"
    r"(?P<code>.*?)(?:^[ \t]*(?P=fence)[ \t]*$|\Z)",
    re.DOTALL | re.MULTILINE,
)
_PROGRAM_LABEL = re.compile(
    r"^[ \t]*(?:\#{1,6}[ \t]*)?(?:\*\*)?[ \t]*"
    r"(?:python[ \t]+)?(?:program|solution|code|python|answer)\b[^\n:]{0,40}:"
    r"[ \t]*(?:\*\*)?[ \t]*$",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_CODE_KEYWORDS = (
    "def ",
    "return",
    "for ",
    "if ",
    "elif ",
    "else",
    "while ",
    "import ",
    "from ",
    "with ",
    "class ",
    "try",
    "except",
    "finally",
    "#",
    "@",
)


def _strip_labels(text: str) -> str:
    while (label := _LABEL.match(text)) and label.end() > 0:
        text = text[label.end() :].lstrip()
    return text


def _clean_question(part: str) -> str:
    """The question inside one segment: its last paragraph (earlier ones are preamble such as
    "Sure! Here are 10 problems:"), after its first numbering label (or, without one, after
    intro lines ending in ":"), with Markdown emphasis and extra whitespace removed."""
    text = _FENCE_LINE.sub("", part).strip()
    paragraphs = [p for p in _BLANK_LINE.split(text) if _strip_labels(p.strip())]
    if not paragraphs:
        return ""
    text = paragraphs[-1].strip()
    label = _LABEL.search(text)
    if label:
        text = text[label.end() :]
    lines = [line for line in _strip_labels(text.strip()).split("\n") if line.strip()]
    # Without a label, drop intro lines such as "Here is a new problem:" above the question.
    while not label and len(lines) > 1 and lines[0].rstrip().endswith(":"):
        lines.pop(0)
    text = _SPACE.sub(" ", " ".join(lines)).strip()
    # Markdown emphasis around the whole question, e.g. "**Tom has 3 pens...?**".
    for wrap in ("**", "__", "*", "_"):
        if len(text) > 2 * len(wrap) and text.startswith(wrap) and text.endswith(wrap):
            text = text[len(wrap) : -len(wrap)].strip()
    return text


def _ast_parse(source: str) -> ast.Module:
    """``ast.parse`` without compile warnings (e.g. "invalid escape sequence", a
    DeprecationWarning or SyntaxWarning depending on the Python version) on stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source)


def _parses(source: str) -> bool:
    try:
        _ast_parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


_PROSE = re.compile(r"^[A-Za-z][\w'’,]*(?:[ \t]+\S+)*[ \t]*[.!:?]?$")


def _is_prose_line(line: str) -> bool:
    """A line that is plainly not code: blank, a "Program:" label, or unindented words with no
    ``=``, brackets or quotes that do not parse as Python and do not start like a statement
    (so a broken code line such as ``result = (a + b`` is never taken for prose)."""
    if not line.strip():
        return True
    if _PROGRAM_LABEL.match(line):
        return True
    words = re.sub(r"(?<=[A-Za-z])['’](?=[A-Za-z])", "", line)  # "Here's" is not a quote
    if line[:1].isspace() or any(c in words for c in "=()[]{}\"'#"):
        return False
    stripped = line.strip()
    if stripped.startswith(_CODE_KEYWORDS):
        return False
    return _PROSE.match(stripped) is not None and not _parses(stripped)


def _trim_prose(code: str) -> str:
    """Drop prose lines before and after the code, only when that turns unparsable text into
    parsable code (code that already parses is returned unchanged)."""
    code = code.strip("\n")
    if _parses(code):
        return code
    lines = code.split("\n")
    start, end = 0, len(lines)
    while start < end and _is_prose_line(lines[start]):
        start += 1
    while end > start and _is_prose_line(lines[end - 1]):
        end -= 1
    trimmed = "\n".join(lines[start:end])
    return trimmed if trimmed.strip() and _parses(trimmed) else code


def _extract_code(part: str) -> str:
    """The program inside a segment: the first fenced block if there is one (an unclosed fence
    runs to the end), else the text with label lines and stray fences removed."""
    blocks = list(_FENCED_BLOCK.finditer(part))
    if blocks:
        preferred = [b for b in blocks if b.group("lang").lower() in ("python", "py", "python3")]
        code = (preferred or blocks)[0].group("code")
        return textwrap.dedent(code).strip("\n").rstrip()
    code = _FENCE_LINE.sub("", part)
    lines = code.strip("\n").split("\n")
    while lines and (not lines[0].strip() or _PROGRAM_LABEL.match(lines[0])):
        lines.pop(0)
    code = textwrap.dedent("\n".join(lines)).strip("\n").rstrip()
    return _trim_prose(code) if code else ""


def _split_unmarked(segment: str) -> tuple[str, str] | None:
    """Recover (question, program) from a segment whose question marker is missing, when the
    program is fenced or starts with a ``def`` line; None otherwise."""
    fence = re.search(r"^[ \t]*(```|~~~)", segment, re.MULTILINE)
    if fence:
        return segment[: fence.start()], segment[fence.start() :]
    definition = re.search(r"^def[ \t]+\w+[ \t]*\(", segment, re.MULTILINE)
    if definition:
        return segment[: definition.start()], segment[definition.start() :]
    return None


def _starts_item(text: str) -> bool:
    """Whether leftover text after the last complete item looks like the start of another item
    (so the reply was cut off) rather than closing prose ("Hope this helps!")."""
    stripped = _FENCE_LINE.sub("", text).strip()
    if not stripped:
        return False
    if END_OF_QUESTION in stripped or _FENCED_BLOCK.search(stripped):
        return True
    return _LABEL.match(stripped) is not None


# --- one-step ------------------------------------------------------------------------------


def parse_one_step(text: str) -> ParseResult:
    """Split a one-step reply into ``(question, program)`` pairs.

    Each pair is the text up to an ``<|endofprogram|>``; inside it, the question is the text
    before ``<|endofquestion|>`` (numbering and preamble removed, whitespace collapsed) and the
    program is the code after it (fences and labels removed). Text after the last
    ``<|endofprogram|>`` that starts another item counts as one ``truncated`` item and is
    dropped; closing prose there is ignored.
    """
    result = ParseResult()
    segments = (text or "").split(END_OF_PROGRAM)
    complete, tail = segments[:-1], segments[-1]
    for segment in complete:
        if END_OF_QUESTION in segment:
            parts = segment.split(END_OF_QUESTION)
            # Two or more question markers: the earlier questions have no program.
            result.errors.extend("missing_program" for _ in parts[1:-1])
            question_part, program_part = parts[-2], parts[-1]
        else:
            split = _split_unmarked(segment)
            if split is None:
                if segment.strip():
                    result.errors.append("missing_marker")
                continue
            question_part, program_part = split
        question = _clean_question(question_part)
        program = _extract_code(program_part)
        if not question:
            result.errors.append("empty_question")
        elif not program:
            result.errors.append("missing_program")
        else:
            result.items.append((question, program))
    if _starts_item(tail):
        result.errors.append("truncated")
    if not result.items and not result.errors:
        result.errors.append("no_pairs")
    return result


# --- two-step ------------------------------------------------------------------------------


def _split_numbered(text: str) -> list[str]:
    """Split an unmarked numbered list into its items (text between consecutive labels)."""
    labels = list(_LABEL.finditer(text))
    return [
        text[m.end() : labels[i + 1].start() if i + 1 < len(labels) else len(text)]
        for i, m in enumerate(labels)
    ]


def parse_questions(text: str) -> ParseResult:
    """Split a two-step question-list reply on ``<|endofquestion|>`` into question strings.

    Leftover text after the last marker is a question missing its final marker when it starts
    with a numbering label and ends with "?"; it is ``truncated`` when it starts with a label
    but does not end with "?"; otherwise it is closing prose and ignored. A reply with no
    marker at all falls back to splitting a numbered list ("1. ...", "Problem 2: ...") and
    keeps the items ending with "?".
    """
    result = ParseResult()
    text = text or ""
    if END_OF_QUESTION not in text:
        for part in _split_numbered(text):
            _keep_if_complete(_clean_question(part), result)
        if not result.items and not result.errors:
            result.errors.append("no_questions")
        return result
    parts = text.split(END_OF_QUESTION)
    for part in parts[:-1]:
        question = _clean_question(part)
        if question:
            result.items.append(question)
        else:
            result.errors.append("empty_question")
    tail = _FENCE_LINE.sub("", parts[-1]).strip()
    if tail and _LABEL.match(tail):
        _keep_if_complete(_clean_question(tail), result)
    if not result.items and not result.errors:
        result.errors.append("no_questions")
    return result


def _keep_if_complete(question: str, result: ParseResult) -> None:
    """An unmarked question counts only if it ends with "?"; otherwise it was cut off."""
    if question.endswith("?"):
        result.items.append(question)
    elif question:
        result.errors.append("truncated")


def _looks_complete(code: str) -> bool:
    """Whether unmarked, unfenced code plausibly ends where the author meant it to: it parses
    and its last statement (or the last statement of its last function) is a ``return`` or an
    assignment to ``result``."""
    try:
        tree = _ast_parse(code)
    except (SyntaxError, ValueError):
        return False
    body: list[ast.stmt] = tree.body
    while body and isinstance(body[-1], ast.FunctionDef):
        body = body[-1].body
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Return):
        return True
    targets = last.targets if isinstance(last, ast.Assign) else []
    return any(isinstance(t, ast.Name) and t.id == "result" for t in targets)


def parse_program(text: str) -> str | None:
    """The program in a two-step program reply, or None when there is none.

    Prefers the first closed fenced code block (a ```python``` one first); otherwise the text
    before ``<|endofprogram|>`` with labels and leading/trailing prose removed. A reply with
    neither a closed fence nor the marker is used only when it parses and ends with
    ``return ...`` or ``result = ...`` (a reply cut off by the token limit gives None). The
    program returned is not guaranteed to parse: ``to_tinygsm_function`` decides.
    """
    text = text or ""
    head, marker, _ = text.partition(END_OF_PROGRAM)
    # A fenced block is closed when its match ends with the fence (else it ran to the end).
    closed = [
        b for b in _FENCED_BLOCK.finditer(head) if b.group(0).rstrip().endswith(b.group("fence"))
    ]
    if not marker and not closed:
        code = _extract_code(head)
        return code if code and _looks_complete(code) else None
    code = _extract_code(head)
    return code or None


# --- program normalisation ----------------------------------------------------------------


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


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _calls(value: ast.expr | None, names: set[str]) -> bool:
    return (
        isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in names
    )


def _is_driver(node: ast.stmt, names: set[str]) -> bool:
    """Top-level code that is not part of the solution: a bare constant or name (docstring,
    stray word), a ``print(...)`` statement, ``if __name__ == "__main__":``, or a statement
    whose value is a call of one of ``names`` (``simple_math_problem()``,
    ``answer = solution()``)."""
    if isinstance(node, ast.Expr):
        value = node.value
        if isinstance(value, (ast.Constant, ast.Name)):
            return True  # a docstring, or a stray word such as "Explanation"
        return _calls(value, {"print"} | names)
    if isinstance(node, ast.AnnAssign) and node.value is None:
        return isinstance(node.annotation, ast.Constant)  # prose such as "Answer: 7"
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return _calls(node.value, names)
    if isinstance(node, ast.If):
        test = node.test
        return (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "__name__"
        )
    return False


_PRELUDE_TYPES = (
    ast.Import,
    ast.ImportFrom,
    ast.Assign,
    ast.AnnAssign,
    ast.FunctionDef,
    ast.ClassDef,
)


def _defaults(fn: ast.FunctionDef) -> list[tuple[str, ast.expr]] | None:
    """``(name, default)`` for each parameter of ``fn``, or None if one has no default (the
    function cannot be called with no arguments)."""
    args = fn.args
    if args.vararg or args.kwarg:
        return None
    positional = args.posonlyargs + args.args
    if len(args.defaults) != len(positional):
        return None
    pairs = [(a.arg, d) for a, d in zip(positional, args.defaults, strict=True)]
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if default is None:
            return None
        pairs.append((arg.arg, default))
    return pairs


def _driver_calls(node: ast.stmt) -> set[str]:
    """Names of functions a top-level driver statement calls: ``f()``, ``print(f())``,
    ``answer = f()``, also inside ``if __name__ == "__main__":``."""
    if isinstance(node, ast.If) and _is_driver(node, set()):
        return set().union(*(_driver_calls(n) for n in node.body))
    value = node.value if isinstance(node, (ast.Expr, ast.Assign, ast.AnnAssign)) else None
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "print"
        and value.args
    ):
        value = value.args[0]
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return {value.func.id}
    return set()


def _find_main(tree: ast.Module) -> ast.FunctionDef | None:
    """The function whose body is the solution: ``simple_math_problem`` if defined; else the
    one argument-free top-level function that driver code calls (or the only function), when
    everything else at top level is imports, definitions, constants above it, or driver code
    (``print(solution())``). None when the program is top-level code."""
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    for fn in functions:
        if fn.name == FUNCTION_NAME:
            return fn
    callable_ = [f for f in functions if _defaults(f) is not None]
    called = set().union(*(_driver_calls(n) for n in tree.body))
    candidates = [f for f in callable_ if f.name in called]
    if not candidates and len(functions) == 1:
        candidates = callable_
    if len(candidates) != 1:
        return None
    fn = candidates[0]
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            continue
        if _is_driver(node, {fn.name}):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.lineno < fn.lineno:
            continue  # a constant defined above the function
        return None
    return fn


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
        pieces.append(text if _parses(text) else ast.unparse(node))
    return "\n".join(pieces)


def _assigns_result(nodes: list[ast.stmt]) -> bool:
    """Whether ``result`` is assigned in these statements (not counting nested functions)."""
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Name) and node.id == "result" and isinstance(node.ctx, ast.Store):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


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
        tree = _ast_parse(source)
    except (SyntaxError, ValueError) as err:
        line = getattr(err, "lineno", None)
        raise ProgramFormatError(f"program does not parse (line {line}): {err}") from err
    lines = source.split("\n")

    main = _find_main(tree)
    if main is not None:
        # Imports, helper definitions and constants above it move into the body.
        prelude = [
            n
            for n in tree.body
            if n is not main
            and not _is_driver(n, {main.name})
            and (
                isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))
                or (isinstance(n, (ast.Assign, ast.AnnAssign)) and n.lineno < main.lineno)
            )
        ]
        body_nodes = list(main.body)
        if body_nodes and _is_docstring(body_nodes[0]):
            body_nodes = body_nodes[1:]
        if not body_nodes:
            raise ProgramFormatError(f"function {main.name} has no body besides its docstring")
        pieces = [_body_source(lines, prelude, tree.body)]
        # Parameters with defaults become local variables.
        defaults = [ast.parse(f"{n} = {ast.unparse(d)}").body[0] for n, d in _defaults(main) or []]
        pieces.extend(ast.unparse(n) for n in defaults)
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
        nodes = prelude + defaults + body_nodes
    else:
        nodes = [n for n in tree.body if not _is_driver(n, set())]
        body = _body_source(lines, nodes, tree.body)

    if not nodes or not body.strip():
        raise ProgramFormatError("program has no statements besides prints and docstrings")
    if not isinstance(nodes[-1], ast.Return) and _assigns_result(nodes):
        body += "\nreturn result"

    header = f"def {FUNCTION_NAME}() -> int:"
    docstring = _docstring_literal(question, "    ")
    indented = textwrap.indent(body, "    ", lambda line: bool(line.strip()))
    out = f"{header}\n{docstring}\n{indented}\n"
    if not _parses(out):
        # Last resort: regenerate the body from the AST (loses comments, always re-indents).
        body = "\n".join(ast.unparse(n) for n in nodes)
        if not isinstance(nodes[-1], ast.Return) and _assigns_result(nodes):
            body += "\nreturn result"
        out = f"{header}\n{docstring}\n{textwrap.indent(body, '    ')}\n"
        if not _parses(out):
            raise ProgramFormatError("could not produce a valid simple_math_problem function")
    return out
