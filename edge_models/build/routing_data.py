"""The labelled routing prompts and their split into train, tune and eval.

Sources (see ``edge_models/data/LABELLING.md``):
- ``data/labelled/sharegpt.jsonl``: labels of a stratified ShareGPT sample (text from the
  PyPI package by id);
- ``data/labelled/written*.jsonl``: prompts written in six languages, short and long;
- ``data/eval/heldout*.jsonl``: earlier hand-written prompts with task and tier;
- ``data/prompts/*.jsonl``: earlier hand-written prompts with a task only (task head's
  training only: they carry no tier, and were written for the first classifier).

A prompt's split is decided by a hash of its text alone, so every language x task
stratum is split in the same proportions (up to sampling) and a prompt never changes
split when files grow. ``infra/routing-eval.jsonl`` is an independent set written apart
from all of these; it is never trained or tuned on either.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from common import DATA_DIR, EDGE_MODELS, hash_split, read_jsonl

REPO = EDGE_MODELS.parent
sys.path.insert(0, str(REPO / "functions"))

from edgeroute.edge.classifier import language_of  # noqa: E402

TASKS = ("chat", "code", "math", "summarize", "translate", "extract", "classify", "qa", "creative")
TIERS = ("small", "medium", "large")
SHARES = {"eval": 0.25, "tune": 0.15}  # the rest trains
INDEPENDENT = REPO / "infra" / "routing-eval.jsonl"


@dataclass(frozen=True)
class Prompt:
    text: str
    task: str
    tier: str | None  # None: task label only
    language: str
    source: str
    split: str


def split_of(text: str) -> str:
    return hash_split("routing-split:", text, SHARES)


def _prompt(
    text: str,
    task: str,
    tier: str | None,
    language: str | None,
    source: str,
    split: str | None = None,
) -> Prompt:
    if task not in TASKS or (tier is not None and tier not in TIERS):
        raise SystemExit(f"{source}: label out of range: {task!r} {tier!r}")
    return Prompt(text, task, tier, language or language_of(text), source, split or split_of(text))


def labelled() -> list[Prompt]:
    """Every labelled prompt with its split (the earlier task-only prompts train only)."""
    from edgeroute.tools import sharegpt

    texts = sharegpt.first_turns()
    rows: list[Prompt] = []
    for row in read_jsonl(DATA_DIR / "labelled" / "sharegpt.jsonl"):
        rows.append(_prompt(texts[row["id"]], row["task"], row["min_tier"], None, "sharegpt"))
    for path in sorted((DATA_DIR / "labelled").glob("written*.jsonl")):
        for row in read_jsonl(path):
            rows.append(
                _prompt(row["prompt"], row["task"], row["min_tier"], row["language"], path.stem)
            )
    for path in sorted((DATA_DIR / "eval").glob("heldout*.jsonl")):
        for row in read_jsonl(path):
            rows.append(_prompt(row["text"], row["task"], row["tier"], None, path.stem))
    for path in sorted((DATA_DIR / "prompts").glob("*.jsonl")):
        for row in read_jsonl(path):
            rows.append(_prompt(row["text"], row["task"], None, None, "task-only", "train"))
    return rows


def independent() -> list[Prompt]:
    """The independent set's generating prompts (embed/moderate go to their endpoints)."""
    return [
        Prompt(r["prompt"], r["task"], r["min_tier"], r["language"], "independent", "independent")
        for r in read_jsonl(INDEPENDENT)
        if r["task"] in TASKS and r["min_tier"] in TIERS
    ]


def heldout_file(rows: list[Prompt], path: Path) -> None:
    """The eval split as JSON lines for ``edgeroute eval-routing`` and the test suite;
    ShareGPT prompts by id (their text stays in the package)."""
    import json

    from edgeroute.tools import sharegpt

    ids = {text: key for key, text in sharegpt.first_turns().items()}
    with path.open("w", encoding="utf-8") as handle:
        for p in rows:
            if p.split != "eval":
                continue
            where = {"sharegpt_id": ids[p.text]} if p.source == "sharegpt" else {"prompt": p.text}
            line = {
                **where,
                "task": p.task,
                "min_tier": p.tier,
                "language": p.language,
                "source": p.source,
            }
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
