"""Train the moderation heads: one calibrated logistic regression per OpenAI category on
the runtime's own window features (``edgeroute.edge.moderation``: the multilingual
sentence vector and alt-profanity-check's offensive logit, which ``build_moderation.py``
converts first).

For each category with enough data:
1. fit on the train split's windows, choosing the regularisation strength and whether
   the profanity logit is used by average precision on the tune split;
2. Platt-calibrate on the tune split (a text's logit is its highest window's);
3. choose the threshold that maximises F1 on the tune split.

Then, with the saved heads exactly as the runtime scores them, measure precision, recall
and F1 per category and language on the eval split, which nothing above reads. A category
is claimed (reported by ``/v1/moderations``; otherwise ``null``) only with
``MIN_EVAL_POSITIVES`` held-out positives and F1 >= ``CLAIM_F1`` on both tune and eval.
Writes ``edge_models/moderation/`` (``heads.npz``, ``labels.json``, ``card.yaml``) and
``data/eval/moderation-heldout.jsonl``. Run from this folder, after
``build_moderation.py``: ``../../.venv-build/bin/python train_moderation.py``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import moderation_data
import numpy as np
from common import (
    DATA_DIR,
    EDGE_MODELS,
    file_entry,
    machine_description,
    package_versions,
    write_yaml,
)
from moderation_data import Text
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from edgeroute.edge import moderation

OUT = EDGE_MODELS / "moderation"
STRENGTHS = (0.3, 1.0, 3.0, 10.0)
MIN_TRAIN_POSITIVES = 8
MIN_EVAL_POSITIVES = 8
CLAIM_F1 = 0.6
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)
PROFANITY = 512  # the profanity logit's column
SLICES = {"en": ("en",), "zh": ("zh",), "es/de/fr/ja": ("es", "de", "fr", "ja")}
NOT_WRITTEN = {
    "sexual/minors": "no data: this project does not write texts for it, so it is not "
    "trained or evaluated",
}


def window_matrix(rows: list[Text]) -> tuple[np.ndarray, np.ndarray]:
    """Every window's features, and the row each window belongs to."""
    owner, parts = [], []
    for index, row in enumerate(rows):
        for part in moderation.windows(row.text):
            owner.append(index)
            parts.append(part)
    return moderation.window_features(parts), np.asarray(owner)


def row_max(values: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    out = np.full(count, -np.inf)
    np.maximum.at(out, owner, values)
    return out


def f1_at(truth: np.ndarray, scores: np.ndarray, cut: float) -> tuple[float, float, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, (scores >= cut).astype(int), average="binary", zero_division=0
    )
    return float(precision), float(recall), float(f1)


def fit_category(
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_tune: np.ndarray,
    tune_owner: np.ndarray,
    y_tune: np.ndarray,
) -> dict[str, Any]:
    """The head with the best tune average precision, its Platt scaling and threshold."""
    best: dict[str, Any] | None = None
    for profanity in (False, True):
        keep = np.ones(z_train.shape[1])
        keep[PROFANITY] = 1.0 if profanity else 0.0
        for c in STRENGTHS:
            model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
            model.fit(z_train * keep, y_train)
            logits = row_max(model.decision_function(z_tune * keep), tune_owner, len(y_tune))
            ap = float(average_precision_score(y_tune, logits))
            if best is None or ap > best["tune_ap"] + 1e-9:
                weights = model.coef_[0] * keep
                best = {
                    "C": c,
                    "profanity": profanity,
                    "tune_ap": ap,
                    "weights": weights,
                    "bias": float(model.intercept_[0]),
                    "logits": logits,
                }
    assert best is not None
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(best["logits"][:, None], y_tune)
    slope, intercept = float(platt.coef_[0][0]), float(platt.intercept_[0])
    scores = 1.0 / (1.0 + np.exp(-(slope * best["logits"] + intercept)))
    f1s = [f1_at(y_tune, scores, cut)[2] for cut in THRESHOLD_GRID]
    top = max(f1s)
    cut = float(max(c for c, f in zip(THRESHOLD_GRID, f1s, strict=True) if f == top))
    best.update(calibration=(slope, intercept), threshold=cut, tune_f1=round(top, 3))
    return best


def held_out(rows: list[Text], scores: np.ndarray, categories: tuple[str, ...]) -> dict[str, Any]:
    """Per category: precision, recall and F1 overall and per language slice, and the
    share of benign ShareGPT prompts flagged."""
    heads = moderation.heads()
    out: dict[str, Any] = {}
    for column, name in enumerate(categories):
        cut = float(heads.thresholds[column])
        truth = np.array([name in r.categories for r in rows], dtype=int)
        entry: dict[str, Any] = {}
        slices = {"all": None, **SLICES}
        for label, languages in slices.items():
            mask = np.array([languages is None or r.language in languages for r in rows])
            p, r, f = f1_at(truth[mask], scores[mask, column], cut)
            entry[label] = {
                "positives": int(truth[mask].sum()),
                "texts": int(mask.sum()),
                "precision": round(p, 3),
                "recall": round(r, 3),
                "f1": round(f, 3),
            }
        benign = np.array([r.language == "sharegpt" for r in rows])
        entry["sharegpt_flagged"] = round(float(np.mean(scores[benign, column] >= cut)), 3)
        out[name] = entry
    return out


def flagged_any(rows: list[Text], scores: np.ndarray, evaluated: list[str]) -> dict[str, Any]:
    """What a guardrail sees: a text flagged for any evaluated category, against a text
    labelled with any of them; and the share of benign ShareGPT prompts flagged."""
    heads = moderation.heads()
    columns = [heads.categories.index(n) for n in evaluated]
    flagged = (scores[:, columns] >= heads.thresholds[columns]).any(axis=1).astype(int)
    truth = np.array([bool(r.categories & set(evaluated)) for r in rows], dtype=int)
    out: dict[str, Any] = {}
    for label, languages in {"all": None, **SLICES}.items():
        mask = np.array([languages is None or r.language in languages for r in rows])
        p, r, f = f1_at(truth[mask], flagged[mask].astype(float), 0.5)
        out[label] = {
            "positives": int(truth[mask].sum()),
            "precision": round(p, 3),
            "recall": round(r, 3),
            "f1": round(f, 3),
        }
    benign = np.array([r.language == "sharegpt" for r in rows])
    out["sharegpt_flagged"] = round(float(flagged[benign].mean()), 3)
    return out


def main() -> None:
    started = time.perf_counter()
    rows = moderation_data.labelled()
    parts = {s: [r for r in rows if r.split == s] for s in ("train", "tune", "eval")}
    x_train, train_owner = window_matrix(parts["train"])
    x_tune, tune_owner = window_matrix(parts["tune"])
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    z_train, z_tune = (x_train - mean) / scale, (x_tune - mean) / scale

    trained: list[str] = []
    chosen: dict[str, Any] = {}
    not_evaluated = dict(NOT_WRITTEN)
    for name in moderation.CATEGORIES:
        if name in NOT_WRITTEN:
            continue
        y_rows = np.array([name in r.categories for r in parts["train"]], dtype=int)
        y_tune = np.array([name in r.categories for r in parts["tune"]], dtype=int)
        if y_rows.sum() < MIN_TRAIN_POSITIVES or y_tune.sum() == 0:
            not_evaluated[name] = f"too little data: {y_rows.sum()} train, {y_tune.sum()} tune"
            continue
        trained.append(name)
        chosen[name] = fit_category(z_train, y_rows[train_owner], z_tune, tune_owner, y_tune)

    OUT.mkdir(exist_ok=True)
    np.savez_compressed(
        OUT / "heads.npz",
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        weights=np.array([chosen[n]["weights"] for n in trained]).T.astype(np.float32),
        bias=np.array([chosen[n]["bias"] for n in trained], dtype=np.float32),
        calibration=np.array([chosen[n]["calibration"] for n in trained], dtype=np.float32),
        thresholds=np.array([chosen[n]["threshold"] for n in trained], dtype=np.float32),
    )

    def write_labels(evaluated: list[str]) -> None:
        labels = {"categories": trained, "evaluated": evaluated}
        (OUT / "labels.json").write_text(json.dumps(labels) + "\n", encoding="utf-8")

    write_labels(trained)  # every head, to score the eval split with the runtime's code
    moderation.heads.cache_clear()
    eval_scores = moderation.category_scores([r.text for r in parts["eval"]])
    evaluation = held_out(parts["eval"], eval_scores, tuple(trained))
    claimed = []
    for name in trained:
        overall, tune_f1 = evaluation[name]["all"], chosen[name]["tune_f1"]
        if overall["positives"] < MIN_EVAL_POSITIVES:
            not_evaluated[name] = f"too few held-out positives ({overall['positives']})"
        elif min(overall["f1"], tune_f1) < CLAIM_F1:
            not_evaluated[name] = (
                f"too poor to claim: F1 {overall['f1']} held out, {tune_f1} tune (bar {CLAIM_F1})"
            )
        else:
            claimed.append(name)
    write_labels(claimed)
    guardrail_view = flagged_any(parts["eval"], eval_scores, claimed)
    moderation.heads.cache_clear()
    moderation_data.heldout_file(rows, DATA_DIR / "eval" / "moderation-heldout.jsonl")

    count = Counter((r.language, r.split) for r in rows)
    positives = Counter(c for r in rows for c in r.categories)
    card: dict[str, Any] = {
        "name": "moderation",
        "task": "OpenAI's moderation categories, per text; null for those not evaluated",
        "heads": "one logistic regression per category (balanced class weights), "
        "Platt-calibrated and thresholded on the tune split",
        "features": {
            "embedding": "edge_models/use-multilingual (512-d) of each window",
            "profanity": "logit of alt-profanity-check's offensive probability (model.onnx, "
            "English words), used where it raised tune average precision",
            "windows": f"{moderation.MAX_WINDOWS} x {moderation.WINDOW_CHARS} characters at "
            f"most: all of a short text, the first {moderation.HEAD_WINDOWS} and the last "
            f"{moderation.MAX_WINDOWS - moderation.HEAD_WINDOWS} of a long one; a text's "
            "score is its highest window's",
        },
        "data": {
            "guide": "edge_models/data/MODERATION.md",
            "written": "edge_models/data/moderation/written-<lang>.jsonl",
            "texts_by_language_and_split": {
                lang: {s: count[(lang, s)] for s in ("train", "tune", "eval")}
                for lang in (*moderation_data.LANGUAGES, "sharegpt")
            },
            "positives_by_category": {n: positives[n] for n in moderation.CATEGORIES},
            "non_english_grouped_with_their_english_original": moderation_data.parallel_share(rows),
            "sharegpt": f"{moderation_data.SHAREGPT_NEGATIVES} benign first turns at most "
            "(routing-labelled sample, hash-ranked, moderated topics left out), negatives",
        },
        "evaluated": claimed,
        "not_evaluated": not_evaluated,
        "claim_rule": f">= {MIN_EVAL_POSITIVES} held-out positives and F1 >= {CLAIM_F1} on "
        "tune and held out",
        "chosen_on_tune": {
            n: {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in chosen[n].items()
                if k in ("C", "profanity", "tune_ap", "threshold", "tune_f1")
            }
            for n in trained
        },
        "held_out": evaluation,
        "held_out_flagged_for_any_evaluated_category": guardrail_view,
        "files": {name: file_entry(OUT / name) for name in ("heads.npz", "labels.json")},
        "built_on": machine_description(),
        "packages": package_versions(),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    write_yaml(OUT / "card.yaml", card)
    print(json.dumps({"evaluated": claimed, "not_evaluated": not_evaluated}, indent=2))
    print("any", json.dumps(guardrail_view))
    for name in trained:
        print(name, chosen[name]["tune_f1"], json.dumps(evaluation[name]))


if __name__ == "__main__":
    main()
