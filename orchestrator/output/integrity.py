"""Corrupt files in an output directory: find them, and move them out of the way.

A committed file can still be damaged after its atomic commit (a disk error, someone copying a
directory half-way, a backend without atomic writes). Readers then raise ``CorruptFileError``
naming the file (``orchestrator.output.storage`` does so for parquet; ``read_commit_json`` here
for the JSON ledger of a commit that kept no rows), and the commands stop with exit 2 and a
hint to run ``mathsynth repair DIR``.

``scan(store)`` decodes every committed file (data, rejected and side splits in full, workers'
candidate commits, and the commit records) and returns the unreadable ones;
``quarantine(store, problems)`` moves each to ``DIR/_mathsynth/quarantine/<its path>``,
together with the other files of the same commit (its rejected and side-split files). What a
quarantined commit recorded is then unknown, so its seeds count as never run: the next
``mathsynth run`` runs them again (answering from the reply log what the teacher answered
before) and commits them anew (their old rows are not in ``data/`` any more, so nothing is
written twice; the drop records of the candidate commits it had used up become orphans and are
removed).
A corrupt rejected or side-split file alone only takes its drop records out of ``stats``: the
ledger still says its seeds finished.

What it does NOT do: repair a file's content, delete anything (quarantine keeps the bytes for
inspection), or run during ``mathsynth run`` (moving data is the user's call).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from orchestrator.output.storage import CorruptFileError, Storage

if TYPE_CHECKING:
    from orchestrator.output.store import OutputStore

__all__ = ["QUARANTINE_DIR", "CorruptFileError", "quarantine", "read_commit_json", "scan"]

QUARANTINE_DIR = "_mathsynth/quarantine"
CANDIDATES_DIR = "_mathsynth/candidates"  # as orchestrator.output.ledger (which imports this)
FINAL_MANIFESTS_DIR = "_mathsynth/commits"
_SPLIT_PREFIX = {"data": "train", "rejected": "rejected", "verifier": "verifier"}


def read_commit_json(storage: Storage, path: str) -> dict[str, Any]:
    """The ledger of a commit that kept no rows (``_mathsynth/commits/<id>.json``)."""
    try:
        entry = json.loads(storage.fs.cat_file(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(path, f"not JSON: {err}", storage.url) from None
    if not isinstance(entry, dict) or not isinstance(entry.get("seeds"), dict):
        raise CorruptFileError(path, "not a commit record (no 'seeds' mapping)", storage.url)
    return entry


def scan(store: OutputStore) -> list[CorruptFileError]:
    """Every committed file that does not read back whole, in path order."""
    problems: list[CorruptFileError] = []
    for split in _SPLIT_PREFIX:
        for path in store.files(split):
            try:
                store.storage.read_table(path)
            except CorruptFileError as err:
                problems.append(err)
            except FileNotFoundError:
                continue
    for path in store.storage.glob(CANDIDATES_DIR, "cand-*.parquet"):
        try:
            store.storage.read_table(path)
        except CorruptFileError as err:
            problems.append(err)
    manifests = store.storage.glob(FINAL_MANIFESTS_DIR, "*.json")
    for path in manifests + store.storage.glob(CANDIDATES_DIR, "cand-*.json"):
        try:
            read_commit_json(store.storage, path)
        except CorruptFileError as err:
            problems.append(err)
    return problems


def _relative(storage: Storage, path: str) -> str:
    return str(PurePosixPath(path).relative_to(PurePosixPath(storage.base)))


def _commit_id(relative: str) -> str | None:
    """The commit a data file, candidate commit or commit record belongs to (None for other
    files)."""
    p = PurePosixPath(relative)
    if p.parts[0] == "data" and p.name.startswith("train-"):
        return p.stem.removeprefix("train-")
    if p.parent == PurePosixPath(FINAL_MANIFESTS_DIR):
        return p.stem
    if p.parent == PurePosixPath(CANDIDATES_DIR):
        return p.stem.removeprefix("cand-")
    return None


def _move(storage: Storage, src: str, dst: str) -> None:
    if storage.local:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        Path(src).replace(dst)
    else:
        storage.fs.mv(src, dst)


def quarantine(store: OutputStore, problems: list[CorruptFileError]) -> list[tuple[str, str]]:
    """Move each corrupt file, and its commit's other files, under ``QUARANTINE_DIR``;
    returns (from, to) for every file moved."""
    storage = store.storage
    targets: list[str] = []
    for problem in problems:
        targets.append(problem.path)
        cid = _commit_id(_relative(storage, problem.path))
        if cid is not None:  # the commit's other files describe seeds that will be re-run
            for split in ("rejected", "verifier"):
                companion = storage.path(f"{split}/{_SPLIT_PREFIX[split]}-{cid}.parquet")
                if storage.fs.exists(companion):
                    targets.append(companion)
    moved: list[tuple[str, str]] = []
    for path in dict.fromkeys(targets):
        dst = storage.path(f"{QUARANTINE_DIR}/{_relative(storage, path)}")
        _move(storage, path, dst)
        moved.append((path, dst))
    return moved
