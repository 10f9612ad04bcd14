"""The cost dashboard's figures, from the usage ledger's records over a window: what
``GET /dashboard`` draws and ``edgeroute usage --report`` prints, one computation for both.

Invariant: spend and calls by model, tenant and key are ``store/usage.py``'s totals (the
same ``UsageTotals.add``), so they equal ``GET /v1/usage`` and ``summarize_usage`` for
the window; a request is its final ledger line, a failed attempt only counts itself.
Latency percentiles are exact (nearest rank) over the window's requests. Cache savings
are an estimate: each hit at its model's mean cost per uncached answer in the window.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edgeroute.config.registry import RESERVED_NAMES
from edgeroute.store.anomalies import Anomaly, detect, window_start
from edgeroute.store.base import Store, UsageRecord
from edgeroute.store.usage import NO_MODEL, UsageTotals, fold, grand_total, ordered

EDGE_TIER = "edge"  # answered on CPU at the edge; every other tier is a GPU upstream
PERCENTILES = (50, 95, 99)
_NUMBER = re.compile(r"\d+(\.\d+)?")


def percentile(values: list[float], p: int) -> float | None:
    """The nearest-rank ``p``th percentile of ``values`` (sorted), ``None`` if empty."""
    if not values:
        return None
    return values[max(math.ceil(p / 100 * len(values)) - 1, 0)]


def decision_reason(reason: str) -> str:
    """A route reason's first clause with its numbers taken out, so decisions group by
    why (``complexity N above N: large``) rather than one group per request."""
    first = reason.split(";", 1)[0].strip()
    return _NUMBER.sub("N", first) or "(none)"


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


@dataclass
class UsageReport:
    start: float
    end: float
    tenant: str | None
    totals: UsageTotals = field(default_factory=lambda: UsageTotals("total"))
    by_model: list[UsageTotals] = field(default_factory=list)
    by_tenant: list[UsageTotals] = field(default_factory=list)
    by_key: list[UsageTotals] = field(default_factory=list)
    by_tier: list[UsageTotals] = field(default_factory=list)
    latency_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)  # tier -> p
    server_errors: int = 0
    fallbacks: int = 0
    degraded: int = 0
    saved_usd_micros: int = 0
    routed: Counter[str] = field(default_factory=Counter)  # virtual-name requests by tier
    routed_why: Counter[tuple[str, str]] = field(default_factory=Counter)  # (tier, why)

    @property
    def edge_share(self) -> float:
        """Of the requests a model answered, the share the edge tier answered."""
        answered = sum(t.requests for t in self.by_tier if t.group != NO_MODEL)
        edge = sum(t.requests for t in self.by_tier if t.group == EDGE_TIER)
        return _rate(edge, answered)

    def as_json(self) -> dict[str, Any]:
        t = self.totals
        return {
            "start": self.start,
            "end": self.end,
            "tenant": self.tenant or "all",
            "totals": {
                **t.as_row("group"),
                "server_errors": self.server_errors,
                "fallbacks": self.fallbacks,
                "degraded": self.degraded,
                "error_rate": _rate(t.errors, t.requests),
                "fallback_rate": _rate(self.fallbacks, t.requests),
                "degraded_rate": _rate(self.degraded, t.requests),
                "cache_hit_rate": _rate(t.cache_hits, t.requests),
                "saved_usd": self.saved_usd_micros / 1_000_000,
                "edge_share": self.edge_share,
            },
            "by_model": [g.as_row("model") for g in self.by_model],
            "by_tenant": [g.as_row("tenant") for g in self.by_tenant],
            "by_key": [g.as_row("key") for g in self.by_key],
            "by_tier": [
                {**g.as_row("tier"), **self.latency_ms.get(g.group, {})} for g in self.by_tier
            ],
            "routing": {
                "requests": sum(self.routed.values()),
                "by_tier": dict(sorted(self.routed.items())),
                "by_reason": [
                    {"tier": tier, "why": why, "requests": n}
                    for (tier, why), n in sorted(self.routed_why.items(), key=lambda x: -x[1])
                ],
            },
        }


def build_report(
    records: Iterable[UsageRecord], start: float, end: float, tenant: str | None = None
) -> UsageReport:
    """The dashboard's figures for ``records`` (the ledger's lines in the window)."""
    report = UsageReport(start, end, tenant)
    lines = list(records)
    by_model = fold(lines, "model")
    report.by_model = ordered(by_model.values())
    report.by_tenant = ordered(fold(lines, "tenant").values())
    report.by_key = ordered(fold(lines, "key").values())
    report.totals = grand_total(report.by_model) or UsageTotals("total")
    tiers: dict[str, UsageTotals] = {}
    latencies: dict[str, list[float]] = defaultdict(list)
    for record in lines:
        if record.failed_attempt:
            continue
        tier = record.tier or NO_MODEL
        tiers.setdefault(tier, UsageTotals(tier)).add(record)
        latencies[tier].append(record.latency_ms)
        report.server_errors += record.status >= 500
        report.fallbacks += record.attempts > 1 and record.status < 400
        report.degraded += bool(record.degraded)
        if record.asked in RESERVED_NAMES and record.status < 400 and record.tier:
            report.routed[record.tier] += 1
            report.routed_why[(record.tier, decision_reason(record.route_reason))] += 1
    report.by_tier = ordered(tiers.values())
    report.latency_ms = {
        tier: {f"p{p}_ms": percentile(sorted(values), p) for p in PERCENTILES}
        for tier, values in latencies.items()
    }
    for model in report.by_model:
        paid = model.requests - model.cache_hits - model.errors
        if model.cache_hits and paid:
            report.saved_usd_micros += round(model.cache_hits * model.cost_usd_micros / paid)
    return report


async def load_report(
    store: Store, start: float, end: float, tenant: str | None
) -> tuple[UsageReport, list[Anomaly]]:
    """The report for ``[start, end)`` and the anomalies of the hour before ``end``, from
    one read of the ledger (the longer of the two windows)."""
    records = await store.query_usage(min(start, window_start(end)), end, tenant)
    report = build_report((r for r in records if r.created_at >= start), start, end, tenant)
    return report, detect(records, end)
