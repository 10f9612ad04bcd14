"""Moderation at the edge: OpenAI's moderation categories, scored by calibrated linear
heads on the multilingual sentence encoder, plus an English profanity signal.

Each text is read as at most ``MAX_WINDOWS`` windows of ``WINDOW_CHARS`` characters
(all of a short text; the head and the tail of a long one), so the cost is bounded for
any input; a category's score is its highest calibrated probability over the windows.
Features per window: the encoder's 512-d vector and the logit of alt-profanity-check's
offensive-language probability (``model.onnx``), standardised. The heads, their Platt
calibration and each category's threshold are in ``edge_models/moderation/heads.npz``
(written by ``edge_models/build/train_moderation.py``, which calls this module so
training and serving cannot drift).

Invariant: a category the model cannot honestly detect (too little data, or held-out
quality too poor to claim; see ``labels.json`` and ``card.yaml``) is reported as ``None``
(not evaluated), never as ``False``, and never flags a text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

import numpy as np

from edgeroute.edge import embedder
from edgeroute.edge.models import model_file, session

MODEL = "moderation"
# Short windows: the heads learnt from sentences, and a flagged sentence in a long window
# is diluted by the rest of it (the encoder averages).
WINDOW_CHARS = 200
MAX_WINDOWS = 16  # a long text: its first HEAD_WINDOWS windows and its last ones
HEAD_WINDOWS = 12
# OpenAI's moderation categories, in the order of its API reference.
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_PROFANITY_CLIP = 1e-4
# A sentence end (one character: it is searched in reversed text too), CJK ones included.
_SENTENCE_END = re.compile(r"[.!?;\u3002\uff01\uff1f\uff1b\n]\s*")
_BATCH = 16  # windows per encoder inference: bounds its memory for any request


@dataclass(frozen=True)
class Heads:
    categories: tuple[str, ...]  # the categories with a head, in column order
    evaluated: frozenset[str]  # the heads whose held-out quality is claimed
    mean: np.ndarray  # [features]
    scale: np.ndarray
    weights: np.ndarray  # [features, categories]
    bias: np.ndarray  # [categories]
    calibration: np.ndarray  # [categories, 2]: Platt slope and intercept
    thresholds: np.ndarray  # [categories], chosen on the tune split


@cache
def heads() -> Heads:
    labels = json.loads(model_file(MODEL, "labels.json").read_text(encoding="utf-8"))
    with np.load(model_file(MODEL, "heads.npz"), allow_pickle=False) as saved:
        arrays = {name: np.asarray(saved[name], dtype=np.float64) for name in saved.files}
    return Heads(
        categories=tuple(labels["categories"]),
        evaluated=frozenset(labels["evaluated"]),
        **arrays,
    )


def _cut(text: str, start: int, end: int) -> int:
    """Where a window from ``start`` should end, at most ``end``: after the last sentence
    end in its second half, else after its last space, else at ``end``."""
    if end >= len(text):
        return len(text)
    half = start + (end - start) // 2
    found = _SENTENCE_END.search(text[half:end][::-1])
    if found:
        return end - found.start()
    space = text.rfind(" ", half, end)
    return space + 1 if space > 0 else end


def _start(text: str, start: int, end: int) -> int:
    """Where a window ending at ``end`` should start, at least ``start``: the mirror of
    ``_cut``, so tail windows also break at sentence ends."""
    if start <= 0:
        return 0
    half = start + (end - start) // 2
    found = _SENTENCE_END.search(text[start:half])
    return start + found.end() if found else start


def windows(text: str) -> list[str]:
    """The parts of a text that are read, at most MAX_WINDOWS of at most WINDOW_CHARS,
    broken at sentence ends where one is near: every window of a short text; the first
    HEAD_WINDOWS and the last ones of a long one (its middle is not read)."""
    head: list[str] = []
    position = 0
    while position < len(text) and len(head) < MAX_WINDOWS:
        cut = _cut(text, position, position + WINDOW_CHARS)
        head.append(text[position:cut])
        position = cut
    if position >= len(text):
        return head or [text]
    head = head[:HEAD_WINDOWS]
    tail: list[str] = []
    end = len(text)
    while len(tail) < MAX_WINDOWS - HEAD_WINDOWS:
        begin = _start(text, end - WINDOW_CHARS, end)
        tail.append(text[begin:end])
        end = begin
    return head + tail[::-1]


def offensive_scores(texts: list[str]) -> list[float]:
    """alt-profanity-check's probability that each text is offensive (English words)."""
    _, probabilities = session(MODEL).run(None, {"text": np.array(texts, dtype=object)})
    return [float(p[1]) for p in np.asarray(probabilities)]


def window_features(parts: list[str]) -> np.ndarray:
    """[len(parts), 513]: each window's sentence vector and its profanity logit."""
    ids = embedder.encode([p if p.strip() else " " for p in parts]).ids
    # Padding is masked, so each window's vector is its own whatever it is batched with.
    vectors = np.concatenate(
        [
            embedder.pooled(ids[i : i + _BATCH], [[(0, len(t))] for t in ids[i : i + _BATCH]])
            for i in range(0, len(ids), _BATCH)
        ]
    )[:, 0].astype(np.float64)
    offensive = np.clip(np.asarray(offensive_scores(parts)), _PROFANITY_CLIP, 1 - _PROFANITY_CLIP)
    logit = np.log(offensive / (1 - offensive))
    return np.concatenate([vectors, logit[:, None]], axis=1)


def window_logits(features: np.ndarray) -> np.ndarray:
    """[windows, categories]: the heads' uncalibrated logits."""
    h = heads()
    logits: np.ndarray = ((features - h.mean) / h.scale) @ h.weights + h.bias
    return logits


def calibrated(logits: np.ndarray) -> np.ndarray:
    h = heads()
    out: np.ndarray = 1.0 / (1.0 + np.exp(-(h.calibration[:, 0] * logits + h.calibration[:, 1])))
    return out


def category_scores(texts: list[str]) -> np.ndarray:
    """[len(texts), categories]: each category's highest calibrated score over a text's
    windows (blocking: a few ms a window, at most MAX_WINDOWS windows a text)."""
    owner: list[int] = []
    parts: list[str] = []
    for index, text in enumerate(texts):
        for part in windows(text):
            owner.append(index)
            parts.append(part)
    scores = calibrated(window_logits(window_features(parts)))
    out = np.zeros((len(texts), scores.shape[1]))
    np.maximum.at(out, np.asarray(owner), scores)
    return out


def flagged_categories(scores: np.ndarray) -> list[str]:
    """The evaluated categories at or over their threshold, for one text's scores."""
    h = heads()
    return [
        name
        for name, score, cut in zip(h.categories, scores, h.thresholds, strict=True)
        if name in h.evaluated and score >= cut
    ]


def moderation_result(scores: np.ndarray) -> dict[str, object]:
    """One text's result in OpenAI's shape; ``None`` for a category not evaluated."""
    h = heads()
    by_name = dict(zip(h.categories, scores, strict=True))
    flagged = set(flagged_categories(scores))
    categories: dict[str, bool | None] = {}
    category_scores_: dict[str, float | None] = {}
    applied: dict[str, list[str]] = {}
    for name in CATEGORIES:
        evaluated = name in h.evaluated
        categories[name] = (name in flagged) if evaluated else None
        category_scores_[name] = round(float(by_name[name]), 6) if evaluated else None
        applied[name] = ["text"] if evaluated else []
    return {
        "flagged": bool(flagged),
        "categories": categories,
        "category_scores": category_scores_,
        "category_applied_input_types": applied,
    }


def moderate(texts: list[str]) -> list[dict[str, object]]:
    """OpenAI-shaped results for each text (blocking; run it on a worker thread)."""
    return [moderation_result(row) for row in category_scores(texts)]


def screen(text: str) -> list[str]:
    """The evaluated categories one text is flagged for (blocking; bounded work)."""
    return flagged_categories(category_scores([text])[0])
