"""Routing: decision time (classification on one thread plus the policy) per prompt of
the labelled set, and the quality report's two headline numbers."""

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
    report = evaluate(
        REPO / "infra" / "routing-eval.jsonl",
        load_registry(REPO / "infra" / "models.yaml"),
        load_policy(REPO / "infra" / "routing.yaml"),
    )
    data = report.as_json()
    print(
        json.dumps(
            {
                key: data[key]
                for key in (
                    "prompts",
                    "decision_ms_p50",
                    "decision_ms_p99",
                    "sufficient_share",
                    "cost_vs_all_large",
                )
            },
            indent=2,
        )
    )
