"""The card's "Reproduce" section: the last run's resolved configuration as a pipeline file a
reader can run, and the command that runs it.

The configuration comes from ``_mathsynth/run.json`` (``output.card_facts.run_record``), made
portable (``output.portable``: local paths become file names, URLs lose credentials). What only
made sense on the machine that ran it is left out, with a note: the built-in CPU teacher's
loopback address (the file then starts it again) and any other teacher served at a loopback or
private address. Seeds come from the configuration, or else from the ``source`` recorded on the
rows. This module reads no file; it turns gathered facts into text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml

from orchestrator.core.seeds import source_label
from orchestrator.methods.catalog import BUILTINS, method_of
from orchestrator.output.card_facts import CardFacts
from orchestrator.output.portable import portable
from orchestrator.teacher.local_cpu import MODEL_ALIAS


@dataclass(frozen=True)
class Reproduce:
    command: str
    config: str  # pipeline.yaml
    notes: list[str]


def _local_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _teacher_notes(teacher: dict[str, object]) -> list[str]:
    """Drop what cannot be reused from ``teacher`` (in place); say what to pass instead."""
    base_url = teacher.get("base_url")
    if not isinstance(base_url, str) or not _local_host(base_url):
        return []
    teacher["base_url"] = None
    if teacher.get("model") == MODEL_ALIAS:
        teacher.pop("model", None)
        return [
            "The teacher was mathsynth's built-in CPU model (SmolLM2-135M-Instruct): the file "
            "leaves `teacher.model` unset, so `mathsynth run` starts it again (`pip install "
            "'mathsynth[cpu-teacher]'`)."
        ]
    return [
        f"The teacher `{teacher.get('model')}` was served at a local address: add "
        "`--base-url URL` of an OpenAI-compatible server that serves it."
    ]


def _seed_sources(facts: CardFacts) -> list[str]:
    names = {s for split in facts.splits.values() for s in split.sources}
    return sorted(str(portable(s)) for s in names if s)


def reproduce(facts: CardFacts) -> Reproduce | None:
    """None when the dataset holds no recorded configuration."""
    if facts.cfg is None:
        return None
    unused = {kind for kind in BUILTINS if kind != facts.cfg.kind}  # other methods' sections
    original = facts.cfg.model_dump(mode="json", exclude={*unused, "prompt_files"})
    config = portable(original)
    notes: list[str] = []
    if config != original:
        notes.append("Local paths of the original configuration are replaced by file names.")
    if isinstance(config.get("teacher"), dict):
        notes += _teacher_notes(config["teacher"])
    command = ["mathsynth", "run", "pipeline.yaml"]
    needs_seeds = method_of(facts.cfg).make_seeds is None
    sources = _seed_sources(facts)
    configured = source_label(facts.cfg.seeds.path)
    if needs_seeds and (not sources or sources == [configured]):
        pass  # the configuration names the seeds the rows came from
    elif needs_seeds and len(sources) == 1:
        command += ["--seeds", sources[0]]
    elif needs_seeds:
        command += ["--seeds", "SEEDS"]
        notes.append("The rows come from several seed sources: " + ", ".join(
            f"`{s}`" for s in sources))  # fmt: skip
    command += ["--out", "out"]
    if needs_seeds:
        notes.append(
            "Seeds are named by file name or Hugging Face dataset id; a local file must be "
            "at hand under that name."
        )
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    return Reproduce(" ".join(command), text, notes)
