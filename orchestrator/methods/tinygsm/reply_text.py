"""Clean the pieces of a TinyGSM teacher reply: question text and program code.

Replies follow the ``prompts/tinygsm/*.j2`` formats: questions end with ``<|endofquestion|>``
and programs with ``<|endofprogram|>``. Real models add leading prose, "Problem 2:" / "1." /
"Question:" labels, Markdown emphasis and code fences and stray whitespace; the helpers here
strip those from one segment of a reply (``clean_question``, ``extract_code``), recover a
segment whose question marker is missing (``split_unmarked``), split an unmarked numbered list
(``split_numbered``) and tell a cut-off item from closing prose (``starts_item``).

This module does not split a reply into items or count rejections (``replies`` does), does not
rewrite programs into the stored function form (``function_form``), and executes nothing.
"""

from __future__ import annotations

import re
import textwrap

from orchestrator.methods.tinygsm.program_ast import parses

END_OF_QUESTION = "<|endofquestion|>"
END_OF_PROGRAM = "<|endofprogram|>"

__all__ = [
    "END_OF_PROGRAM",
    "END_OF_QUESTION",
    "FENCED_BLOCK",
    "FENCE_LINE",
    "LABEL",
    "clean_question",
    "extract_code",
    "split_numbered",
    "split_unmarked",
    "starts_item",
]

# A numbering label at the start of a line: "Problem 2:", "**Question 3.**", "### Q4)", "5.",
# "(6)", "Question:", "New problem #7 -", or "**Problem 8**" alone on its line. Decimals such
# as "12.5 kg" are not labels: a label's "N." must be followed by whitespace or a line end.
LABEL = re.compile(
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
FENCE_LINE = re.compile(r"^[ \t]*(```|~~~)[\w+-]*[ \t]*$", re.MULTILINE)
FENCED_BLOCK = re.compile(
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
_PROSE = re.compile(r"^[A-Za-z][\w'’,]*(?:[ \t]+\S+)*[ \t]*[.!:?]?$")


def _strip_labels(text: str) -> str:
    while (label := LABEL.match(text)) and label.end() > 0:
        text = text[label.end() :].lstrip()
    return text


def clean_question(part: str) -> str:
    """The question inside one segment: its last paragraph (earlier ones are preamble such as
    "Sure! Here are 10 problems:"), after its first numbering label (or, without one, after
    intro lines ending in ":"), with Markdown emphasis and extra whitespace removed."""
    text = FENCE_LINE.sub("", part).strip()
    paragraphs = [p for p in _BLANK_LINE.split(text) if _strip_labels(p.strip())]
    if not paragraphs:
        return ""
    text = paragraphs[-1].strip()
    label = LABEL.search(text)
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
    return _PROSE.match(stripped) is not None and not parses(stripped)


def _trim_prose(code: str) -> str:
    """Drop prose lines before and after the code, only when that turns unparsable text into
    parsable code (code that already parses is returned unchanged)."""
    code = code.strip("\n")
    if parses(code):
        return code
    lines = code.split("\n")
    start, end = 0, len(lines)
    while start < end and _is_prose_line(lines[start]):
        start += 1
    while end > start and _is_prose_line(lines[end - 1]):
        end -= 1
    trimmed = "\n".join(lines[start:end])
    return trimmed if trimmed.strip() and parses(trimmed) else code


def extract_code(part: str) -> str:
    """The program inside a segment: the first fenced block if there is one (an unclosed fence
    runs to the end), else the text with label lines and stray fences removed."""
    blocks = list(FENCED_BLOCK.finditer(part))
    if blocks:
        preferred = [b for b in blocks if b.group("lang").lower() in ("python", "py", "python3")]
        code = (preferred or blocks)[0].group("code")
        return textwrap.dedent(code).strip("\n").rstrip()
    code = FENCE_LINE.sub("", part)
    lines = code.strip("\n").split("\n")
    while lines and (not lines[0].strip() or _PROGRAM_LABEL.match(lines[0])):
        lines.pop(0)
    code = textwrap.dedent("\n".join(lines)).strip("\n").rstrip()
    return _trim_prose(code) if code else ""


def split_unmarked(segment: str) -> tuple[str, str] | None:
    """Recover (question, program) from a segment whose question marker is missing, when the
    program is fenced or starts with a ``def`` line; None otherwise."""
    fence = re.search(r"^[ \t]*(```|~~~)", segment, re.MULTILINE)
    if fence:
        return segment[: fence.start()], segment[fence.start() :]
    definition = re.search(r"^def[ \t]+\w+[ \t]*\(", segment, re.MULTILINE)
    if definition:
        return segment[: definition.start()], segment[definition.start() :]
    return None


def starts_item(text: str) -> bool:
    """Whether leftover text after the last complete item looks like the start of another item
    (so the reply was cut off) rather than closing prose ("Hope this helps!")."""
    stripped = FENCE_LINE.sub("", text).strip()
    if not stripped:
        return False
    if END_OF_QUESTION in stripped or FENCED_BLOCK.search(stripped):
        return True
    return LABEL.match(stripped) is not None


def split_numbered(text: str) -> list[str]:
    """Split an unmarked numbered list into its items (text between consecutive labels)."""
    labels = list(LABEL.finditer(text))
    return [
        text[m.end() : labels[i + 1].start() if i + 1 < len(labels) else len(text)]
        for i, m in enumerate(labels)
    ]
