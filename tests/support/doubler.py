"""The ``doubler`` test method (``tests/support/plugin/``) as a user has it: copied outside
the package, named by ``module:attr`` or installed with an entry point, with its seeds, a
pipeline file and a scripted teacher whose mistakes are planned.

Seeds ask ``a + b``; the teacher's program prints ``factor * (a + b)``, except for ``a == 5``
(a wrong program: dropped by verification), ``a == 7`` (a program that raises: dropped by
execution) and ``a == 6`` (a reply without a program: counted, no row).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

PLUGIN = Path(__file__).parent / "plugin"
PAIRS = [(3, 4), (5, 6), (7, 2), (8, 9), (2, 2), (6, 1)]
KEPT = {3, 8, 2}  # the ``a`` of the seeds whose rows are kept
REJECTED = {"verify:wrong_answer": 1, "run_program:runtime_error": 1}


def install(folder: Path) -> Path:
    """The method's module and prompts copied into ``folder`` (not under the repository)."""
    shutil.copytree(PLUGIN, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def install_entry_point(site: Path, name: str = "doubler") -> Path:
    """``site`` holding the module and a ``*.dist-info`` whose ``mathsynth.methods`` entry
    point ``name`` is ``doubler_method:METHOD``: what ``pip install`` of a plugin leaves."""
    install(site)
    info = site / "doubler_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: doubler-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[mathsynth.methods]\n{name} = doubler_method:METHOD\n")
    return site


def write_seeds(path: Path) -> Path:
    lines = [
        json.dumps({"question": f"Sam has {a} apples and buys {b} more. How many apples does "
                                "Sam have now?", "answer": str(a + b)})
        for a, b in PAIRS
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def pipeline(kind: str, seeds: Path, factor: int = 3, **extra: Any) -> dict[str, Any]:
    """A pipeline file's content for the doubler method."""
    return {
        "name": "doubler-test", "kind": kind, "seeds": {"path": str(seeds)},
        "doubler": {"factor": factor},
        "decontamination": {"enabled": False},
        # small final commits: the dataset gets several shards (one schema across them)
        "run": {"workers": 2, "concurrency": 2, "commit_every_seeds": 2, "final_commit_rows": 2},
        **extra,
    }  # fmt: skip


def doubler_reply(request: dict[str, Any], index: int) -> str:
    prompt = request["messages"][-1]["content"]
    factor = int(re.search(r"prints (\d+) times", prompt).group(1))  # type: ignore[union-attr]
    a, b = (int(n) for n in re.findall(r"\d+", prompt.split("Problem:", 1)[1])[:2])
    if a == 6:
        return "I cannot write that program."
    body = {5: f"print({a} * {b} * {factor})", 7: "raise ValueError('no')"}.get(
        a, f"print(({a} + {b}) * {factor})"
    )
    return f"Here it is:\n```python\n{body}\n```\n"
