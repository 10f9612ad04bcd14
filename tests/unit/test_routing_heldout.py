"""The routing heads on the held-out split (``edge_models/data/eval/routing-heldout.jsonl``,
which no training or threshold choice read): accuracy floors, and agreement between the
decisions made with the shipped encoder and with an fp32 encoder computed here.

The floors sit a few points under the figures measured when the heads were built
(docs/routing.md), so a rebuild that loses accuracy fails; the agreement check is what
keeps decisions the same on CPUs with other vector units, since it runs wherever the
suite runs.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from edgeroute.config.policy import load_policy
from edgeroute.config.registry import load_registry
from edgeroute.edge import embedder, features, heads
from edgeroute.edge.classifier import classify, request_text
from edgeroute.tools.eval_routing import Evaluation, evaluate, read_items
from tests.support import use_reference

REPO = Path(__file__).resolve().parents[2]
HELDOUT = REPO / "edge_models" / "data" / "eval" / "routing-heldout.jsonl"
TASK_FLOOR = 0.72
LANGUAGE_FLOOR = 0.65  # every language with at least 20 held-out prompts
SUFFICIENT_FLOOR = 0.95
COST_CEILING = 0.35  # relative tier costs 1 : 5 : 25 against always-large
AGREEMENT_FLOOR = 0.99


@cache
def _evaluation() -> Evaluation:
    return evaluate(HELDOUT, load_registry(REPO / "infra" / "models.yaml"), load_policy())


def test_task_accuracy_floor_overall_and_per_language() -> None:
    result = _evaluation()
    assert result.overall.task_accuracy is not None
    assert result.overall.task_accuracy >= TASK_FLOOR, result.overall.as_json()
    judged = {k: r for k, r in result.languages.items() if r.total >= 20}
    assert {"en", "zh", "ja", "es", "de", "fr"} <= set(judged)
    low = {k: r.task_accuracy for k, r in judged.items() if (r.task_accuracy or 0) < LANGUAGE_FLOOR}
    assert not low, low


def test_tiers_are_sufficient_at_a_bounded_cost() -> None:
    overall = _evaluation().overall
    assert overall.sufficient_share >= SUFFICIENT_FLOOR, overall.as_json()
    assert overall.relative_cost_share <= COST_CEILING, overall.as_json()


def test_no_single_sink_class_for_wrong_task_answers() -> None:
    sinks = _evaluation().overall.wrong_task_sinks()
    wrong = sum(sinks.values())
    assert max(sinks.values()) <= 0.4 * wrong, sinks


def _decisions(items: list[dict[str, object]]) -> list[tuple[str, str]]:
    policy = load_policy()
    out: list[tuple[str, str]] = []
    for item in items:
        c = classify({"messages": [{"role": "user", "content": item["prompt"]}]})
        out.append((c.task, policy.tier_for_complexity(c.complexity)))
    return out


# The numpy fp32 pass takes ~40 s alone and past 120 s on a loaded 2-core box: the
# ceiling guards against a hang, not for speed.
@pytest.mark.timeout(600)
def test_decisions_match_an_fp32_encoder_on_this_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    items = read_items(HELDOUT)[::2]  # every other prompt: the fp32 pass is numpy, slower
    shipped = _decisions(items)

    def fp32_pooled(rows: list[list[int]], spans: list[list[tuple[int, int]]]) -> np.ndarray:
        return np.stack(
            [use_reference.pooled(row, s) for row, s in zip(rows, spans, strict=True)]
        ).astype(np.float32)

    monkeypatch.setattr(embedder, "pooled", fp32_pooled)
    reference = _decisions(items)
    agree = Counter(a == b for a, b in zip(shipped, reference, strict=True))
    assert agree[True] / len(items) >= AGREEMENT_FLOOR, agree


def test_scores_are_explained_by_their_signals() -> None:
    ask = "Prove that there are infinitely many primes p such that p + 2 is also prime."
    found = features.extract(*request_text({"messages": [{"role": "user", "content": ask}]}), 1)
    scores = heads.score(found.vector, found.bag)
    h = heads.heads()
    z = (found.vector.astype(np.float64) - h.mean) / h.scale
    mean_logit = float((z @ h.tier_weights + h.tier_bias).mean())
    # The contributions add up to the mean tier logit, less its bias: an exact account.
    assert abs(sum(scores.signals.values()) + float(h.tier_bias.mean()) - mean_logit) < 1e-6
    assert 0.0 <= scores.at_least_large <= scores.at_least_medium <= 1.0
