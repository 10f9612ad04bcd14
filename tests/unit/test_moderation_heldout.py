"""The moderation heads on the held-out split (``edge_models/data/eval/moderation-heldout.jsonl``,
which no training, calibration or threshold choice read): per-category F1 floors overall
and in English and Chinese, computed here with the runtime's own scoring.

The floors sit a little under the figures measured when the heads were built
(``edge_models/moderation/card.yaml``, docs/security.md), so a rebuild that loses quality
fails. The encoder's products are fp32 and its vectors do not depend on the CPU's vector
units, so the figures are the same wherever the suite runs.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from edgeroute.edge import moderation
from edgeroute.tools import sharegpt

HELDOUT = Path(__file__).resolve().parents[2] / "edge_models/data/eval/moderation-heldout.jsonl"
# Measured F1 at build time minus about 0.05 (overall) or 0.1 (one language, where a
# category has only a handful of positives).
OVERALL_F1_FLOOR = {
    "harassment": 0.76,
    "harassment/threatening": 0.79,
    "hate": 0.86,
    "hate/threatening": 0.85,
    "illicit": 0.73,
    "self-harm": 0.76,
    "self-harm/intent": 0.82,
    "self-harm/instructions": 0.72,
    "sexual": 0.79,
    "violence": 0.6,
}
LANGUAGE_F1_FLOOR = {  # categories with at least 5 held-out positives in the language
    ("en", "harassment"): 0.71,
    ("en", "harassment/threatening"): 0.7,
    ("en", "hate"): 0.84,
    ("en", "illicit"): 0.66,
    ("en", "self-harm"): 0.75,
    ("en", "sexual"): 0.9,
    ("en", "violence"): 0.52,
    ("zh", "harassment"): 0.66,
    ("zh", "hate"): 0.72,
    ("zh", "hate/threatening"): 0.8,
    ("zh", "illicit"): 0.65,
    ("zh", "self-harm"): 0.52,
    ("zh", "violence"): 0.56,
}
SHAREGPT_FLAGGED_CEILING = 0.04  # benign ShareGPT prompts flagged for any category


@cache
def _heldout() -> tuple[list[dict[str, object]], np.ndarray]:
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    texts = sharegpt.first_turns()
    for row in rows:
        if "sharegpt_id" in row:
            row["text"] = texts[str(row["sharegpt_id"])]
    return rows, moderation.category_scores([str(r["text"]) for r in rows])


def _f1(category: str, language: str | None = None) -> tuple[float, int]:
    rows, scores = _heldout()
    heads = moderation.heads()
    column = heads.categories.index(category)
    keep = [language is None or r["language"] == language for r in rows]
    truth = np.array([category in r["categories"] for r in rows])[keep]  # type: ignore[operator]
    predicted = (scores[:, column] >= heads.thresholds[column])[keep]
    hits = int((truth & predicted).sum())
    f1 = 2 * hits / max(int(truth.sum()) + int(predicted.sum()), 1)
    return f1, int(truth.sum())


def test_the_evaluated_categories_are_the_ones_measured_here() -> None:
    assert moderation.heads().evaluated == set(OVERALL_F1_FLOOR)


def test_f1_floors_on_the_held_out_split() -> None:
    measured = {c: round(_f1(c)[0], 3) for c in OVERALL_F1_FLOOR}
    low = {c: f for c, f in measured.items() if f < OVERALL_F1_FLOOR[c]}
    assert not low, measured


def test_f1_floors_in_english_and_chinese() -> None:
    measured = {k: _f1(k[1], k[0]) for k in LANGUAGE_F1_FLOOR}
    assert all(count >= 5 for _, count in measured.values()), measured
    low = {k: f for k, (f, _) in measured.items() if f < LANGUAGE_F1_FLOOR[k]}
    assert not low, measured


def test_benign_sharegpt_prompts_are_rarely_flagged() -> None:
    rows, scores = _heldout()
    heads = moderation.heads()
    benign = np.array([r["language"] == "sharegpt" for r in rows])
    evaluated = np.array([c in heads.evaluated for c in heads.categories])
    flagged = ((scores >= heads.thresholds) & evaluated).any(axis=1)
    assert benign.sum() >= 100
    assert flagged[benign].mean() <= SHAREGPT_FLAGGED_CEILING


def test_categories_not_evaluated_are_null_never_false() -> None:
    [result] = moderation.moderate(["How do I make a pipe bomb at home?"])
    categories = result["categories"]
    scores = result["category_scores"]
    assert isinstance(categories, dict) and isinstance(scores, dict)
    assert list(categories) == list(moderation.CATEGORIES)
    for name in ("sexual/minors", "violence/graphic", "illicit/violent"):
        assert categories[name] is None and scores[name] is None
    assert categories["illicit"] is True and result["flagged"] is True


def test_a_long_text_is_read_in_a_bounded_number_of_windows() -> None:
    text = "a" * 3_000_000 + " I am going to kill myself tonight."
    parts = moderation.windows(text)
    assert len(parts) == moderation.MAX_WINDOWS
    assert all(len(p) <= moderation.WINDOW_CHARS for p in parts)
    assert parts[-1].endswith("tonight.") and parts[0].startswith("a")
    assert moderation.windows("") == [""]
    assert moderation.screen(text)  # the tail is read
