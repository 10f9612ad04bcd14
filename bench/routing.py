"""Routing: decision time (classification on one thread plus the policy) per prompt of
the held-out split and of the independent set, with the quality report's headline
numbers for each."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    # Unconfigured, the classifier runs on one thread.
    from edgeroute.config.policy import load_policy
    from edgeroute.config.registry import load_registry
    from edgeroute.edge import classifier
    from edgeroute.tools.eval_routing import evaluate

    classifier.warm()
    registry = load_registry(REPO / "infra" / "models.yaml")
    policy = load_policy(REPO / "infra" / "routing.yaml")
    sets = {
        "heldout": REPO / "edge_models" / "data" / "eval" / "routing-heldout.jsonl",
        "independent": REPO / "infra" / "routing-eval.jsonl",
    }
    keys = (
        "prompts",
        "task_accuracy",
        "decision_ms_p50",
        "decision_ms_p99",
        "sufficient_share",
        "cost_vs_all_large",
        "relative_cost_vs_all_large_1_5_25",
    )
    out = {}
    for name, path in sets.items():
        data = evaluate(path, registry, policy).overall.as_json()
        out[name] = {key: data[key] for key in keys}
    print(json.dumps(out, indent=2))
