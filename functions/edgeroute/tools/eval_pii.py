"""`edgeroute eval-pii [FILE]`: precision and recall of each PII recognizer (and
`python -m bench pii`).

Each line of FILE (default: the repository's ``tests/data/pii/labelled.jsonl``) is
``{"text", "pii": [{"label", "value"}]}``; a labelled value counts at every place it
occurs in the text. A finding is right only with the same class and the exact span:
a finding of the wrong class or the wrong extent is a false positive and leaves the
labelled value missed. Texts with no labels are the look-alikes that must not match.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgeroute.privacy.recognizers import CLASSES, Scanner

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "pii"
DEFAULT_SET = DATA / "labelled.jsonl"  # written alongside the recognizers
HELDOUT_SET = DATA / "heldout.jsonl"  # written after them, and not tuned on


@dataclass
class Scores:
    true: Counter[str] = field(default_factory=Counter)
    false: Counter[str] = field(default_factory=Counter)  # found, not labelled
    missed: Counter[str] = field(default_factory=Counter)  # labelled, not found
    texts: int = 0
    mistakes: list[str] = field(default_factory=list)

    def precision(self, kind: str) -> float | None:
        found = self.true[kind] + self.false[kind]
        return self.true[kind] / found if found else None

    def recall(self, kind: str) -> float | None:
        labelled = self.true[kind] + self.missed[kind]
        return self.true[kind] / labelled if labelled else None

    def overall(self) -> tuple[float, float]:
        true, false, missed = (sum(c.values()) for c in (self.true, self.false, self.missed))
        return true / max(1, true + false), true / max(1, true + missed)


def _labelled_spans(text: str, pii: list[dict[str, str]]) -> set[tuple[int, int, str]]:
    spans = set()
    for item in pii:
        value, at = item["value"], text.find(item["value"])
        while at >= 0:
            spans.add((at, at + len(value), item["label"]))
            at = text.find(value, at + 1)
    return spans


def evaluate(path: Path = DEFAULT_SET, phone_region: str = "US") -> Scores:
    scores = Scores()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        text = row["text"]
        gold = _labelled_spans(text, row["pii"])
        found = {(f.start, f.end, f.kind) for f in Scanner(phone_region).find(text)}
        scores.texts += 1
        for _, _, kind in found & gold:
            scores.true[kind] += 1
        for start, end, kind in found - gold:
            scores.false[kind] += 1
            scores.mistakes.append(f"false {kind}: {text[start:end]!r} in {text!r}")
        for start, end, kind in gold - found:
            scores.missed[kind] += 1
            scores.mistakes.append(f"missed {kind}: {text[start:end]!r} in {text!r}")
    return scores


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render(scores: Scores) -> str:
    """A Markdown table, as docs/security.md shows it."""
    lines = [
        "| recognizer | labelled | found | right | precision | recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in CLASSES:
        labelled = scores.true[kind] + scores.missed[kind]
        found = scores.true[kind] + scores.false[kind]
        lines.append(
            f"| {kind} | {labelled} | {found} | {scores.true[kind]} | "
            f"{_percent(scores.precision(kind))} | {_percent(scores.recall(kind))} |"
        )
    precision, recall = scores.overall()
    labelled = sum(scores.true.values()) + sum(scores.missed.values())
    lines.append(
        f"| all ({scores.texts} texts) | {labelled} | "
        f"{sum(scores.true.values()) + sum(scores.false.values())} | "
        f"{sum(scores.true.values())} | {_percent(precision)} | {_percent(recall)} |"
    )
    return "\n".join(lines)
