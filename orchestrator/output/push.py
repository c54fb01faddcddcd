"""``mathsynth push DIR REPO_ID``: publish an output dataset to the Hugging Face Hub in one commit.

``upload_plan(store)`` lists exactly what goes up, as (file in the output, path in the repo):
the card (``README.md``), the parquet files of the ``data``, ``rejected`` and ``verifier``
splits, the plots, and ``summary.json`` when it holds no local path or secret
(``output.portable.leaks``; otherwise it is left out and the plan says why). Never anything
under ``_mathsynth/`` (ledgers, progress, temp files). It refuses, naming the file, when a
``source`` cell holds a local path (data written before sources were made portable).
``push`` rewrites the card and plots from disk, then, through ``huggingface_hub``, creates the
dataset repo if needed and makes one commit adding the plan's files and deleting files of the
mirrored folders (``data/``, ``rejected/``, ``verifier/``, ``plots/``) that the plan no longer
has, so the repo holds this dataset and nothing stale. Object-store outputs are copied to a
temporary local directory first. Credentials are ``huggingface_hub``'s own (``HF_TOKEN`` or a
saved login); ``HF_ENDPOINT`` picks another Hub. This module builds no card itself
(``output.card`` does).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pyarrow.compute as pc

from orchestrator.output.card import CARD_FILE, write_card
from orchestrator.output.plots import PLOT_DIR
from orchestrator.output.portable import is_local_path, leaks
from orchestrator.output.store import OutputStore

SPLITS = ("data", "rejected", "verifier")
MIRRORED = (*SPLITS, PLOT_DIR)  # repo folders that mirror the output exactly
SUMMARY = "summary.json"


class PushError(ValueError):
    """The output cannot be published as it is; the message names the file."""


@dataclass(frozen=True)
class PlanItem:
    source: str  # full path in the store's filesystem
    path_in_repo: str


@dataclass
class UploadPlan:
    items: list[PlanItem] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # path in the output -> why

    @property
    def paths(self) -> list[str]:
        return [item.path_in_repo for item in self.items]


@dataclass(frozen=True)
class PushResult:
    commit_url: str
    uploaded: list[str]
    deleted: list[str]
    left_out: dict[str, str]


def _relative(store: OutputStore, path: str) -> str:
    return PurePosixPath(path).relative_to(store.storage.base).as_posix()


def _check_sources(store: OutputStore, path: str) -> None:
    column = store.read_table(path, ["source"]).column("source")
    local = [s for s in pc.unique(column.drop_null()).to_pylist() if is_local_path(s)]
    if local:
        raise PushError(
            f"{store.uri(path)}: the `source` column holds local paths ({local[0]!r}); it was "
            "written by an older mathsynth: regenerate the dataset before publishing it"
        )


def upload_plan(store: OutputStore) -> UploadPlan:
    """What ``push`` uploads (see the module docstring); reads the output, writes nothing."""
    plan = UploadPlan()
    if not store.is_output():
        raise PushError(f"{store.url}: not a mathsynth output directory (no data/)")
    if not store.exists(CARD_FILE):
        raise PushError(f"{store.url}: no {CARD_FILE} (run `mathsynth stats --plot` first)")
    card_leaks = leaks(store.read_text(CARD_FILE))
    if card_leaks:
        raise PushError(f"{store.uri(store.storage.path(CARD_FILE))}: holds {card_leaks[0]!r}")
    plan.items.append(PlanItem(store.storage.path(CARD_FILE), CARD_FILE))
    for split in SPLITS:
        for path in store.files(split):
            _check_sources(store, path)
            plan.items.append(PlanItem(path, _relative(store, path)))
    for path in store.storage.glob(PLOT_DIR, "*.png"):
        plan.items.append(PlanItem(path, _relative(store, path)))
    summary = store.read_json(SUMMARY)
    if summary is not None:
        found = leaks(summary)
        if found:
            plan.left_out[SUMMARY] = f"holds a local path or secret ({found[0]!r})"
        else:
            plan.items.append(PlanItem(store.storage.path(SUMMARY), SUMMARY))
    return plan


def push(
    location: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    license: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> PushResult:
    """Refresh the card, then upload the plan to dataset repo ``repo_id`` in one commit."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    store = OutputStore(location)
    if not store.is_output():
        raise PushError(f"{store.url}: not a mathsynth output directory (no data/)")
    if not store.committed_files():
        raise PushError(f"{store.url}: no accepted rows (data/train-*.parquet) to publish")
    write_card(store, license=license)
    plan = upload_plan(store)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    remote = api.list_repo_files(repo_id, repo_type="dataset")
    wanted = set(plan.paths)
    stale = [p for p in remote if p not in wanted and p.split("/", 1)[0] in MIRRORED]
    if SUMMARY in plan.left_out and SUMMARY in remote:
        stale.append(SUMMARY)  # an earlier, clean summary would describe another run
    with tempfile.TemporaryDirectory(prefix="mathsynth-push-") as tmp:
        operations: list[CommitOperationAdd | CommitOperationDelete] = []
        for item in plan.items:
            local = item.source
            if not store.storage.local:  # huggingface_hub reads local files
                local = str(Path(tmp) / item.path_in_repo)
                Path(local).parent.mkdir(parents=True, exist_ok=True)
                store.storage.fs.get_file(item.source, local)
            operations.append(CommitOperationAdd(item.path_in_repo, local))
        operations += [CommitOperationDelete(p) for p in stale]
        info = api.create_commit(
            repo_id, operations, repo_type="dataset",
            commit_message=f"mathsynth: {len(plan.items)} files ({len(stale)} removed)",
        )  # fmt: skip
    return PushResult(info.commit_url, plan.paths, stale, plan.left_out)
