"""The learned routing heads: task (multinomial logistic regression over the dense
features and a TF-IDF bag of hashed pieces) and minimum tier
(two cumulative logistic regressions, P(tier >= medium) and P(tier >= large), each
Platt-calibrated on the tuning split).

They are linear in the features, so what pushed a score is exact: each signal's weight
times its value, and each sentence vector's summed contribution. numpy only; the weights
are a few hundred kB in ``edge_models/routing/heads.npz`` (written by
``edge_models/build/train_routing.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import numpy as np

from edgeroute.edge.features import SIGNALS, SLICES
from edgeroute.edge.models import model_file

MODEL = "routing"
_DIMENSIONS = 512


@dataclass(frozen=True)
class Heads:
    mean: np.ndarray
    scale: np.ndarray
    task_weights: np.ndarray  # [features, tasks]
    task_bias: np.ndarray
    bag_weights: np.ndarray  # [BAG_BUCKETS, tasks]
    bag_idf: np.ndarray  # [BAG_BUCKETS]
    bag_scale: np.ndarray  # () the bag's weight against the dense features
    tier_weights: np.ndarray  # [features, 2]: >= medium, >= large
    tier_bias: np.ndarray
    calibration: np.ndarray  # [2, 2]: Platt slope and intercept per threshold
    tasks: tuple[str, ...]


@cache
def heads() -> Heads:
    with np.load(model_file(MODEL, "heads.npz"), allow_pickle=False) as saved:
        arrays = {name: np.asarray(saved[name], dtype=np.float64) for name in saved.files}
    tasks = tuple(json.loads(model_file(MODEL, "labels.json").read_text())["tasks"])
    return Heads(**arrays, tasks=tasks)


@dataclass(frozen=True)
class Scores:
    task: str
    task_probabilities: dict[str, float]
    at_least_medium: float
    at_least_large: float
    signals: dict[str, float]  # contribution of each input to the tier logits (mean of two)

    @property
    def complexity(self) -> float:
        """Expected minimum tier on a 0-1 scale (small 0, medium 0.5, large 1)."""
        return round((self.at_least_medium + self.at_least_large) / 2.0, 3)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def bag_vector(
    bag: dict[int, float], idf: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """(buckets, values): the bag's TF-IDF, L2-normalised and scaled, as the heads read it."""
    buckets = np.fromiter(bag, dtype=np.int64, count=len(bag))
    values = np.fromiter(bag.values(), dtype=np.float64, count=len(bag)) * idf[buckets]
    norm = float(np.linalg.norm(values))
    return buckets, (values / norm * scale if norm > 0 else values)


def score(vector: np.ndarray, bag: dict[int, float]) -> Scores:
    h = heads()
    z = (vector.astype(np.float64) - h.mean) / h.scale
    buckets, values = bag_vector(bag, h.bag_idf, float(h.bag_scale))
    task_logits = z @ h.task_weights + h.task_bias + values @ h.bag_weights[buckets]
    task_probs = np.exp(task_logits - task_logits.max())
    task_probs /= task_probs.sum()
    tier_logits = z @ h.tier_weights + h.tier_bias
    calibrated = _sigmoid(h.calibration[:, 0] * tier_logits + h.calibration[:, 1])
    # P(>= large) cannot exceed P(>= medium); the two heads are fitted apart.
    medium, large = float(calibrated[0]), float(min(calibrated[1], calibrated[0]))
    parts = z * h.tier_weights.mean(axis=1)
    contributions = {
        **{
            name: float(parts[i * _DIMENSIONS : (i + 1) * _DIMENSIONS].sum())
            for i, name in enumerate(SLICES)
        },
        **{
            name: float(v)
            for name, v in zip(SIGNALS, parts[len(SLICES) * _DIMENSIONS :], strict=True)
        },
    }
    return Scores(
        task=h.tasks[int(task_probs.argmax())],
        task_probabilities={
            t: round(float(p), 4) for t, p in zip(h.tasks, task_probs, strict=True)
        },
        at_least_medium=round(medium, 4),
        at_least_large=round(large, 4),
        signals=contributions,
    )


def top_signals(signals: dict[str, float], count: int = 4) -> dict[str, float]:
    """The inputs that moved the tier score most, either way, rounded."""
    ranked = sorted(signals.items(), key=lambda item: abs(item[1]), reverse=True)[:count]
    return {name: round(value, 3) for name, value in ranked}
