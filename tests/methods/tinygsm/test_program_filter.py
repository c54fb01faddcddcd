"""The static TinyGSM program filter: what it drops, with which reason, and what it keeps."""

from __future__ import annotations

import pytest

from orchestrator.core.records import Record
from orchestrator.methods.tinygsm.program_filter import ProgramFilter, check_program

ARITHMETIC = '''
import math
from fractions import Fraction


def simple_math_problem() -> int:
    """Tom has 3 boxes of 12 apples. He eats 5. How many are left?"""
    boxes = [12] * 3
    total = sum(boxes) - 5
    parts = ", ".join(str(b) for b in sorted(boxes))
    share = Fraction(total, 2)
    result = math.floor(share) + len(parts) * 0
    return result
'''

DROPPED = {
    "import os\ndef simple_math_problem():\n    return 1\n": ("disallowed_import", "import os"),
    "import urllib.request\nurllib.request.urlopen('http://x')\n": (
        "disallowed_import", "import urllib.request"),
    "from subprocess import run\n": ("disallowed_import", "import subprocess"),
    "from . import secrets\n": ("disallowed_import", "relative import"),
    "def f():\n    import socket\n    return 1\n": ("disallowed_import", "import socket"),
    "with open('/etc/passwd') as fh:\n    x = fh.read()\n": ("disallowed_builtin", "open"),
    "f = open\nx = f('/tmp/out', 'w')\n": ("disallowed_builtin", "open"),
    "x = eval('1+1')\n": ("disallowed_builtin", "eval"),
    "exec('import os')\n": ("disallowed_builtin", "exec"),
    "m = __import__('os')\n": ("dunder_attribute", "__import__"),
    "x = input()\n": ("disallowed_builtin", "input"),
    "g = getattr(object, 'mro')\n": ("disallowed_builtin", "getattr"),
    "x = globals()['y']\n": ("disallowed_builtin", "globals"),
    "c = ().__class__.__bases__[0].__subclasses__()\n": ("dunder_attribute", ".__"),
    "b = __builtins__\n": ("dunder_attribute", "__builtins__"),
}  # fmt: skip


def test_plain_arithmetic_with_allowed_modules_and_methods_is_kept() -> None:
    assert check_program(ARITHMETIC) is None


def test_a_program_may_define_names_that_shadow_builtins() -> None:
    src = "def open(n):\n    return n * 2\n\ndef simple_math_problem():\n    return open(21)\n"
    assert check_program(src) is None
    assert check_program("if __name__ == '__main__':\n    print(1)\n") is None


@pytest.mark.parametrize("source", sorted(DROPPED))
def test_io_network_and_reflection_are_dropped_with_reason(source: str) -> None:
    verdict = check_program(source)
    assert verdict is not None, source
    reason, detail = verdict
    want_reason, want_detail = DROPPED[source]
    assert reason == want_reason and want_detail in detail and "line" in detail


def test_unparsable_programs_are_left_to_the_sandbox() -> None:
    assert check_program("def f(:\n") is None


def test_stage_counts_and_rejects_with_detail() -> None:
    def rec(i: int, code: str) -> Record:
        return Record(id=f"r{i}", question="q", seed_id="s", method="m", code=code)

    bad = "import urllib.request\nopen('x', 'w').write('1')\nurllib.request.urlopen('http://e')\n"
    stage = ProgramFilter()
    kept = list(stage.run([rec(0, ARITHMETIC), rec(1, bad)]))
    assert [r.id for r in kept] == ["r0"]
    counts = stage.counters.as_dict()["program_filter"]
    assert counts == {"seen": 2, "kept": 1, "dropped:disallowed_import": 1}
    (dropped,) = stage.rejected
    assert dropped.reject_reason == "program_filter:disallowed_import"
    assert dropped.reject_detail == "import urllib.request at line 1"
