"""Host files cannot reach the dataset: not through a program's result, not through its errors.

A world-readable secret is planted on the host (in ``/etc`` and ``/var/tmp``, like a ``.env``
or ``/etc/passwd``). Sandbox-level: a program on the warm pool or under per-run bubblewrap
cannot see it (or any host path outside the interpreter). Pipeline-level: a real TinyGSM run
(Ray, HTTP to a scripted teacher, parquet) whose teacher writes programs that encode the secret
into their numeric result or raise it in an exception writes nothing of it to ``data/`` or
``rejected/``, and the program that writes a file and calls ``urlopen`` is dropped by the
program filter (on by default) with its reason counted.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.sandbox import Sandbox, SandboxLimits, fsview, runner
from tests.support.configs import make_config
from tests.support.output import rows
from tests.support.scripted_server import ScriptedServer

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def planted() -> Iterator[tuple[str, list[Path]]]:
    """A secret in world-readable files the way a careless host keeps them."""
    secret = f"SECRET-{secrets.token_hex(12)}"
    paths = [Path(f"/etc/mathsynth-test-{secrets.token_hex(4)}.env"),
             Path(f"/var/tmp/mathsynth-test-{secrets.token_hex(4)}.env")]  # fmt: skip
    for path in paths:
        path.write_text(f"API_KEY={secret}\n")
        path.chmod(0o644)
    try:
        yield secret, paths
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


@pytest.mark.parametrize("mode", ["pool", "bwrap"])
def test_a_program_sees_only_the_interpreter(mode: str, planted: tuple[str, list[Path]]) -> None:
    why_not = runner.probe(mode)
    if why_not is not None:
        pytest.skip(f"{mode} does not work here: {why_not}")
    secret, paths = planted
    sb = Sandbox(SandboxLimits(use_bwrap=True), warm=mode == "pool")
    code = (
        "import json, os\n"
        "out = {'root': sorted(os.listdir('/')), 'read': {}}\n"
        f"for p in {[str(p) for p in paths] + ['/etc/passwd', '/etc/hostname']!r}:\n"
        "    try:\n"
        "        out['read'][p] = open(p).read()\n"
        "    except OSError as e:\n"
        "        out['read'][p] = type(e).__name__\n"
        "print(json.dumps(out))\n"
    )
    res = sb.run_sync(code)
    assert res.ok, res
    seen = json.loads(res.stdout)
    assert set(seen["read"].values()) == {"FileNotFoundError"}, seen["read"]
    assert secret not in res.stdout
    view = fsview.host_view()
    tops = {p.strip("/").split("/")[0] for p in view.paths()}
    tops |= {link.strip("/").split("/")[0] for link, _ in view.symlinks}
    assert set(seen["root"]) <= tops | {"dev", "proc", "tmp"}
    assert "etc" not in seen["root"] and "home" not in seen["root"]


def _hostile_programs(paths: list[str], marker: str) -> list[str]:
    """What a teacher could write, each ending in ``result = ...`` (TinyGSM's plain form)."""
    encode = (
        "# read a host file and return its first bytes as the answer\n"
        "result = 7\n"
        f"for path in {paths!r}:\n"
        "    try:\n"
        "        data = open(path, 'rb').read(6)\n"
        "        result = int.from_bytes(data, 'big')\n"
        "        break\n"
        "    except OSError:\n"
        "        pass\n"
    )
    raise_it = (
        "# put host files into an exception message (which used to land in reject_detail)\n"
        f"texts = [{marker!r}]\n"
        f"for path in {paths!r}:\n"
        "    try:\n"
        "        texts.append(open(path).read())\n"
        "    except OSError:\n"
        "        pass\n"
        "result = 1 / 0 if not texts else int('leak:' + '|'.join(texts))\n"
    )
    to_stderr = (
        "import sys\n"
        f"for path in {paths!r}:\n"
        "    try:\n"
        "        sys.stderr.write(open(path).read())\n"
        "    except OSError:\n"
        "        pass\n"
        f"raise SystemExit({marker!r})\n"
        "result = 3\n"
    )
    network = (
        "import urllib.request\n"
        "open('exfil.txt', 'w').write('x')\n"
        "try:\n"
        "    urllib.request.urlopen('http://127.0.0.1:9/', timeout=1)\n"
        "except Exception:\n"
        "    pass\n"
        "result = 11\n"
    )
    return [encode, raise_it, to_stderr, network]


def _reply_for(programs: list[str]):
    def reply(request: dict[str, Any], index: int) -> str:
        prompt = request["messages"][-1]["content"]
        town = secrets.token_hex(3) if "Seed problem" in prompt else "x"
        out = []
        for i, program in enumerate(programs):
            question = f"In town {town} there are {i + 3} shops with {i + 5} boxes each. " \
                "How many boxes are there in all?"  # fmt: skip
            out.append(f"Problem {i + 1}: {question}\n<|endofquestion|>\n{program}\n"
                       "<|endofprogram|>\n")  # fmt: skip
        return "".join(out)

    return reply


def _without(value: Any, source: str) -> Any:
    """``value`` with every copy of the program ``source`` cut out of its strings (the chat
    form's ``solution`` and ``messages`` quote the program)."""
    if isinstance(value, str):
        return value.replace(source, "") if source else value
    if isinstance(value, list):
        return [_without(v, source) for v in value]
    if isinstance(value, dict):
        return {k: _without(v, source) for k, v in value.items()}
    return value


def _all_text(out: Path, but: str = "") -> str:
    """Every row of ``data`` and ``rejected`` as text; ``but="code"``: without the program
    source anywhere (its column and its quotes in other columns)."""
    found = [r for split in ("data", "rejected") for r in rows(out, split)]
    if but == "code":
        found = [_without({k: v for k, v in r.items() if k != "code"}, r["code"] or "")
                 for r in found]  # fmt: skip
    return json.dumps(found, default=str)


@pytest.mark.usefixtures("ray_local")
def test_no_host_secret_reaches_data_or_rejected(
    tmp_path: Path, seeds: list, planted: tuple[str, list[Path]]
) -> None:
    secret, paths = planted
    targets = [*map(str, paths), "/etc/passwd"]
    marker = f"MARK-{secrets.token_hex(6)}"
    programs = _hostile_programs(targets, marker)
    encoded = [str(int.from_bytes(p.read_bytes()[:6], "big")) for p in paths]
    encoded.append(str(int.from_bytes(Path("/etc/passwd").read_bytes()[:6], "big")))
    from orchestrator.engine.driver import run_job

    with ScriptedServer(reply=_reply_for(programs)) as srv:
        out = tmp_path / "unfiltered"
        cfg = make_config(srv.base_url, problems_per_seed=len(programs), program_filter=False)
        run_job(cfg, seeds[:2], out)
        filtered = tmp_path / "filtered"
        summary = run_job(make_config(srv.base_url, problems_per_seed=len(programs)),
                          seeds[:2], filtered)  # fmt: skip

    data, rejected = rows(out), rows(out, "rejected")
    text = _all_text(out) + _all_text(filtered)
    assert secret not in text
    assert "root:x:0" not in text
    # the marker is in the programs' source (the code column); it was also in an exception
    # message and on stderr, which must not reach any other column
    assert marker not in _all_text(out, but="code") + _all_text(filtered, but="code")
    assert not any(e in text for e in encoded)
    # The encoding program ran and found nothing to read; the network one ran too.
    assert sorted({r["answer"] for r in data}) == ["11", "7"]
    details = {
        r["reject_detail"] for r in rejected if r["reject_reason"] == "execute:runtime_error"
    }
    assert {re.sub(r"\d+", "N", d) for d in details} == {"ValueError at line N", "exit status N"}
    # With the program filter (the default) the imports are dropped before they run.
    dropped = [r for r in rows(filtered, "rejected") if r["reject_reason"].startswith("program_")]
    assert {r["reject_reason"] for r in dropped} == {
        "program_filter:disallowed_builtin",
        "program_filter:disallowed_import",
    }
    assert "11" not in {r["answer"] for r in rows(filtered)}
    assert summary["rejected_by_reason"]["program_filter:disallowed_import"] == 2 * 2
