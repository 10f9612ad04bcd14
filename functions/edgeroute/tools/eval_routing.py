"""`edgeroute eval-routing FILE`: how well the policy picks tiers on labelled prompts.

Each line of FILE is ``{"prompt", "task", "min_tier"}``: the cheapest tier that answers
the prompt well. The router classifies each prompt and decides as it would for
``model: "auto"`` with every endpoint healthy and no cost limits. Reported: the share
of prompts sent to a sufficient tier (at or above ``min_tier``), the predicted cost
relative to sending every prompt to the large tier, and a confusion table.

Embedding and moderation prompts reach the edge through their own routes, not the
router; they are counted as the endpoint would send them and reported apart.
Cost assumes every answer is ``--output-tokens`` long (256 by default).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeroute.config.policy import Policy
from edgeroute.config.registry import TIER_ORDER, ModelSpec, Registry
from edgeroute.edge.classifier import classify
from edgeroute.pipeline.autoroute import Limits, decide
from edgeroute.store.keys import mint_key
from edgeroute.types import Kind

_ENDPOINT_TASKS = {"embed", "moderate"}


@dataclass
class Report:
    total: int = 0
    sufficient: int = 0
    cost: float = 0.0
    cost_all_large: float = 0.0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_task: dict[str, Counter[str]] = field(default_factory=dict)
    endpoint_routed: int = 0
    task_correct: int = 0
    task_total: int = 0
    decide_ms: list[float] = field(default_factory=list)

    @property
    def sufficient_share(self) -> float:
        return self.sufficient / self.total if self.total else 0.0

    @property
    def relative_cost(self) -> float:
        return self.cost / self.cost_all_large if self.cost_all_large else 0.0

    def as_json(self) -> dict[str, Any]:
        ms = sorted(self.decide_ms)
        return {
            "prompts": self.total,
            "sufficient_share": round(self.sufficient_share, 4),
            "cost_vs_all_large": round(self.relative_cost, 4),
            "task_accuracy": round(self.task_correct / self.task_total, 4)
            if self.task_total
            else None,
            "endpoint_routed": self.endpoint_routed,
            "decision_ms_p50": round(ms[len(ms) // 2], 3) if ms else None,
            "decision_ms_p99": round(ms[max(int(len(ms) * 0.99) - 1, 0)], 3) if ms else None,
            "confusion": {f"{a}->{b}": n for (a, b), n in sorted(self.confusion.items())},
            "by_task": {t: dict(c) for t, c in sorted(self.by_task.items())},
        }


def _cheapest(registry: Registry, tier: str) -> ModelSpec:
    models = [m for m in registry.models() if m.tier == tier]
    if not models:
        raise ValueError(f"the registry has no {tier} model to compare costs against")
    return min(models, key=lambda m: m.price.input_per_mtok + m.price.output_per_mtok)


def evaluate(path: Path, registry: Registry, policy: Policy, output_tokens: int = 256) -> Report:
    report = Report()
    large = _cheapest(registry, "large")
    _, principal = mint_key("eval")
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        label, task = item["min_tier"], item["task"]
        payload: dict[str, Any] = {
            "messages": [{"role": "user", "content": item["prompt"]}],
            "max_tokens": output_tokens,
        }
        started = time.perf_counter()
        c = classify(payload)
        if task in _ENDPOINT_TASKS:
            kind = Kind.EMBEDDINGS
            report.endpoint_routed += 1
        else:
            kind = Kind.CHAT
            report.task_total += 1
            report.task_correct += c.task == task
        decision = decide(
            name="auto",
            kind=kind,
            payload=payload,
            c=c,
            registry=registry,
            policy=policy,
            principal=principal,
            health={},
            limits=Limits(),
            now=time.time(),
        )
        report.decide_ms.append((time.perf_counter() - started) * 1000)
        chosen = decision.targets[0]
        report.total += 1
        report.sufficient += TIER_ORDER.index(chosen.tier) >= TIER_ORDER.index(label)
        report.confusion[(label, chosen.tier)] += 1
        report.by_task.setdefault(task, Counter())[chosen.tier] += 1
        out = 0 if kind is Kind.EMBEDDINGS else output_tokens
        report.cost += chosen.price.cost_usd(c.prompt_tokens, out)
        report.cost_all_large += large.price.cost_usd(c.prompt_tokens, output_tokens)
    return report


def render(report: Report) -> str:
    """The report as Markdown: headline numbers, then the confusion table."""
    data = report.as_json()
    lines = [
        f"- prompts: {data['prompts']} ({data['endpoint_routed']} embedding/moderation "
        "requests routed by their endpoint)",
        f"- sent to a sufficient tier: **{data['sufficient_share']:.1%}**",
        f"- predicted cost relative to sending everything to large: "
        f"**{data['cost_vs_all_large']:.1%}**",
        f"- classifier task accuracy on the chat prompts: {data['task_accuracy']:.1%}",
        f"- classification + decision time: p50 {data['decision_ms_p50']} ms, "
        f"p99 {data['decision_ms_p99']} ms",
        "",
        "| labelled min tier \\ chosen | " + " | ".join(TIER_ORDER) + " |",
        "|---|" + "---|" * len(TIER_ORDER),
    ]
    for label in TIER_ORDER:
        row = [str(report.confusion.get((label, chosen), 0)) for chosen in TIER_ORDER]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)
