"""Answer verification: equality of final answers, answer extraction, majority vote, and the
``VerifyAgainstGold`` filter stage.

``answers_equal(a, b)`` first normalises both sides and decides numerically when it can, then
falls back to symbolic equivalence (math-verify, in a child process with a hard time limit:
``orchestrator.quality.symbolic``). Normalisation: ``\\boxed{}``/``$``/``\\(\\)`` unwrapped;
``\\left``/``\\right``, LaTeX spacing, ``\\dfrac``/``\\tfrac``, degree signs, currency symbols
(``$ \\$ € £``) and a leading ``x =`` removed; ``\\text{}`` unwrapped and trailing unit words
after a number (``18 dollars``, ``5\\text{ cm}``) dropped. Numbers: integers, decimals,
scientific notation, ``1,234,567`` (commas only in groups of three: "1,2" is a pair), ``3/4``,
``\\frac{3}{4}``, mixed ``2\\frac{1}{4}`` (= 9/4). Numbers are equal within ``rel_tol``.

Percent rule: a percent sign is optional. If exactly one side is ``p%`` the other side equals
it when it is ``p`` or ``p/100`` (``50%`` = ``50`` = ``0.5``); two percentages compare their
``p``. Tuples, intervals and sets: brackets must match (``[1,2)`` ≠ ``(1,2)``), elements are
compared pairwise in order, sets ``\\{..\\}`` in any order. A symbolic comparison that runs
past ``timeout_s`` counts as "not equal". This module does not run generated code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.records import Record
from orchestrator.core.stage import Filter
from orchestrator.quality.symbolic import SymbolicChecker

SYMBOLIC = SymbolicChecker()

_DROP = re.compile(r"\\left|\\right|\\displaystyle|\\[!,;: ]|~|\^\{?\\circ\}?|°|\\\$|[$€£]")
_TEXT = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\{([^{}]*)\}")
_ASSIGN = re.compile(r"^[a-zA-Z]\s*=\s*(?=\S)")
_UNITS = re.compile(r"^(-?[\d.,/]+(?:e[+-]?\d+)?%?)\s+[a-zA-Z][a-zA-Z .]*$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DECIMAL = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$")
_SLASH = re.compile(r"^(-?\d+)/(\d+)$")
_FRAC = re.compile(r"^(-?)(\d+)?\\frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}$")
_ANSWER_IS = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.+)", re.I)
_BRACKETS = (("\\{", "\\}"), ("(", ")"), ("[", "]"), ("(", "]"), ("[", ")"))
_UNORDERED = ("\\{\\}", "")  # sets, and bare lists ("-2, 3": all solutions)


def _unwrap_boxed(text: str) -> str:
    boxed = last_boxed(text)
    return boxed if boxed is not None else text


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j].strip()
    return None


def normalize_answer(text: str) -> str:
    s = _unwrap_boxed(str(text).strip())
    s = s.strip().strip("$").strip()
    for a, b in (("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""), ("\\dfrac", "\\frac"),
                 ("\\tfrac", "\\frac"), ("\\%", "%"), ("−", "-")):  # fmt: skip
        s = s.replace(a, b)
    s = _TEXT.sub(r" \1", s)
    s = _DROP.sub(" ", s)
    s = _ASSIGN.sub("", s.strip()).strip().rstrip(".").strip()
    m = _UNITS.match(s)
    if m:
        s = m.group(1)
    return re.sub(r"\s+", " ", s).strip()


def _number(s: str) -> tuple[Fraction | float, bool] | None:
    """(value, had a percent sign) for a plain number, else None."""
    s = s.replace(" ", "")
    pct = s.endswith("%")
    s = s[:-1] if pct else s
    s = s.lstrip("+")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    try:
        if _DECIMAL.match(s):
            return (Fraction(s) if "e" not in s else float(s)), pct
        m = _SLASH.match(s)
        if m and int(m.group(2)):
            return Fraction(int(m.group(1)), int(m.group(2))), pct
        m = _FRAC.match(s)
        if m and float(m.group(4)):
            value = Fraction(m.group(3)) / Fraction(m.group(4)) + int(m.group(2) or 0)
            return (-value if m.group(1) else value), pct
    except (ValueError, OverflowError, ZeroDivisionError):
        return None
    return None


def _close(x: Fraction | float, y: Fraction | float, rel_tol: float) -> bool:
    if isinstance(x, Fraction) and isinstance(y, Fraction) and x == y:
        return True
    return math.isclose(float(x), float(y), rel_tol=rel_tol, abs_tol=1e-12)


def _numbers_equal(a: tuple, b: tuple, rel_tol: float) -> bool:
    (x, px), (y, py) = a, b
    if px == py:
        return _close(x, y, rel_tol)
    p, other = (x, y) if px else (y, x)
    return _close(p, other, rel_tol) or _close(Fraction(p) / 100, other, rel_tol)


def _split(s: str) -> tuple[str, list[str]] | None:
    """(bracket pair, elements) for a comma list: bracketed (tuple/interval/set) or bare."""
    kind, inner = "", s
    for o, c in _BRACKETS:
        if s.startswith(o) and s.endswith(c) and len(s) > len(o) + len(c):
            kind, inner = o + c, s[len(o) : len(s) - len(c)]
            break
    parts, depth, cur = [], 0, []
    for ch in inner:
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return (kind, parts) if len(parts) > 1 and all(parts) else None


def answers_equal(
    a: str | None, b: str | None, *, rel_tol: float = 1e-6, timeout_s: float = 2.0
) -> bool:
    """Whether two final answers are the same (see the module docstring for the rules)."""
    if a is None or b is None:
        return False
    na, nb = normalize_answer(a), normalize_answer(b)
    if not na or not nb:
        return False
    if na == nb:
        return True
    xa, xb = _number(na), _number(nb)
    if xa is not None and xb is not None:
        return _numbers_equal(xa, xb, rel_tol)
    sa, sb = _split(na), _split(nb)
    if sa is not None and sb is not None:
        if sa[0] != sb[0] or len(sa[1]) != len(sb[1]):
            return False
        eq = lambda x, y: answers_equal(x, y, rel_tol=rel_tol, timeout_s=timeout_s)  # noqa: E731
        if sa[0] not in _UNORDERED:
            return all(eq(x, y) for x, y in zip(sa[1], sb[1], strict=True))
        rest = list(sb[1])
        for x in sa[1]:
            j = next((j for j, y in enumerate(rest) if eq(x, y)), None)
            if j is None:
                return False
            rest.pop(j)
        return True
    return _symbolic(na, nb, timeout_s) is True


@lru_cache(maxsize=4096)
def _symbolic(a: str, b: str, timeout_s: float) -> bool | None:
    return SYMBOLIC.equal(a, b, timeout_s)


def extract_final_answer(text: str | None) -> str | None:
    """The final answer of a chain-of-thought: the last ``\\boxed{}``, else GSM8K's ``#### N``,
    else the last "The answer is ..." / "Answer: ..." (to the end of its line)."""
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed or None
    if "####" in text:
        return text.rsplit("####", 1)[1].strip().splitlines()[0].strip() or None
    found = _ANSWER_IS.findall(text)
    if not found:
        return None
    answer = found[-1].strip().splitlines()[0].strip().strip("*").strip()
    return answer.rstrip(".").strip() or None


def majority_vote(
    answers: Sequence[str | None],
    threshold: float,
    *,
    rel_tol: float = 1e-6,
    timeout_s: float = 2.0,
) -> tuple[str | None, float]:
    """Cluster equal answers; (first answer of the largest cluster, its share of all answers)
    if that share is ≥ ``threshold``, else (None, share). Missing answers count in the total
    but never win; ties go to the cluster seen first."""
    if not answers:
        return None, 0.0
    clusters: list[list[str]] = []
    for ans in answers:
        if ans is None or not str(ans).strip():
            continue
        home = next((c for c in clusters if answers_equal(c[0], ans, rel_tol=rel_tol,
                                                          timeout_s=timeout_s)), None)  # fmt: skip
        if home is None:
            clusters.append([ans])
        else:
            home.append(ans)
    if not clusters:
        return None, 0.0
    best = max(clusters, key=len)  # first of the largest
    share = len(best) / len(answers)
    return (best[0] if share >= threshold else None), share


class VerifyAgainstGold(Filter):
    """Keep records whose ``answer`` equals ``gold_answer``; drop ``wrong_answer`` (or
    ``no_answer``). Records without a gold answer pass unless ``require_gold``."""

    name = "verify"

    def __init__(self, require_gold: bool = False, rel_tol: float = 1e-6, timeout_s: float = 2.0):
        super().__init__()
        self.require_gold = require_gold
        self.rel_tol = rel_tol
        self.timeout_s = timeout_s

    def filter(self, record: Record) -> str | None:
        if record.gold_answer is None:
            return "no_gold" if self.require_gold else None
        if record.answer is None:
            return "no_answer"
        ok = answers_equal(record.answer, record.gold_answer, rel_tol=self.rel_tol,
                           timeout_s=self.timeout_s)  # fmt: skip
        return None if ok else "wrong_answer"


class VerifySettings(BaseModel):
    """Settings for ``VerifyAgainstGold`` (built by ``stage()``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    require_gold: bool = False
    rel_tol: float = Field(1e-6, ge=0)
    timeout_s: float = Field(2.0, gt=0, description="per symbolic comparison")

    def stage(self) -> VerifyAgainstGold:
        return VerifyAgainstGold(self.require_gold, self.rel_tol, self.timeout_s)
