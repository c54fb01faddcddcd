"""A private Ray started by a run listens on loopback only, even where the test environment's
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (set in ``tests/conftest.py``) is absent, as it is for
users: the child below starts Ray through ``ensure_ray`` without it and reports every listening
TCP socket its process tree holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os
from pathlib import Path
import ray
from orchestrator.engine.ray_session import ensure_ray

def listening() -> dict[str, str]:
    '''socket inode -> "address:port" of every listening TCP socket on this host.'''
    found = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A":  # LISTEN
                continue
            hexaddr, port = f[1].split(":")
            raw = bytes.fromhex(hexaddr)
            if v6:
                words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
                addr = b"".join(words)
                mapped = addr[:12] == b"\0" * 10 + b"\xff\xff"
                host = ".".join(map(str, addr[12:])) if mapped else addr.hex()
            else:
                host = ".".join(map(str, raw[::-1]))
            found[f[9]] = f"{host}:{int(port, 16)}"
    return found

def tree(root: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    out, todo = {root}, [root]
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid and child not in out:
                out.add(child)
                todo.append(child)
    return out

assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ
ensure_ray(num_cpus=1)
node = ray._private.worker.global_worker.node.address
socks = listening()
held = []
for pid in tree(os.getpid()):
    try:
        links = [os.readlink(p) for p in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        continue
    held += [socks[l[8:-1]] for l in links if l.startswith("socket:[") and l[8:-1] in socks]
ray.shutdown()
print("REPORT " + json.dumps({"node": node, "listening": sorted(set(held)),
                              "env_after": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}))
"""


@pytest.mark.timeout(120)
def test_a_private_ray_listens_on_loopback_only() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=100)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.split("REPORT ", 1)[1])
    assert report["node"].startswith("127.0.0.1:")
    assert len(report["listening"]) >= 2, report  # the GCS and the raylet at least
    assert all(a.startswith("127.0.0.1:") for a in report["listening"]), report
    assert report["env_after"] is None  # the switch is not left on for a later RAY_ADDRESS run
