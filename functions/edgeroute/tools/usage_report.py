"""``edgeroute usage --report``: the dashboard's figures (``store/report.py``) as tables
in the terminal (rich), or with ``--json`` exactly what ``GET /dashboard/data`` returns."""

from __future__ import annotations

import json
from typing import Any

from edgeroute.api.dashboard_page import pct, usd
from edgeroute.store.base import Store
from edgeroute.store.report import load_report


async def report_json(store: Store, start: float, end: float, tenant: str | None) -> dict[str, Any]:
    report, anomalies = await load_report(store, start, end, tenant)
    return {**report.as_json(), "anomalies": [a.as_json() for a in anomalies]}


def print_report(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    t = figures["totals"]
    summary = Table(title=f"edgeroute usage, tenant {figures['tenant']}")
    for column in ("calls", "spend", "cache hit rate", "saved", "edge share", "errors",
                   "fallbacks", "degraded"):  # fmt: skip
        summary.add_column(column, justify="right")
    summary.add_row(
        f"{t['requests']:,}",
        usd(t["cost_usd"]),
        pct(t["cache_hit_rate"]),
        usd(t["saved_usd"]),
        pct(t["edge_share"]),
        pct(t["error_rate"]),
        pct(t["fallback_rate"]),
        pct(t["degraded_rate"]),
    )
    console.print(summary)
    for by in ("model", "tenant", "key"):
        table = Table(title=f"by {by}")
        for column in (by, "calls", "spend", "errors", "cache hits", "tokens in", "tokens out"):
            table.add_column(column, justify="left" if column == by else "right")
        for row in figures[f"by_{by}"]:
            table.add_row(
                str(row[by]),
                f"{row['requests']:,}",
                usd(row["cost_usd"]),
                f"{row['errors']:,}",
                f"{row['cache_hits']:,}",
                f"{row['prompt_tokens']:,}",
                f"{row['completion_tokens']:,}",
            )
        console.print(table)
    tiers = Table(title="latency by tier (ms)")
    for column in ("tier", "calls", "p50", "p95", "p99"):
        tiers.add_column(column, justify="left" if column == "tier" else "right")
    for row in figures["by_tier"]:
        cells = [_ms(row.get(f"p{p}_ms")) for p in (50, 95, 99)]
        tiers.add_row(str(row["tier"]), f"{row['requests']:,}", *cells)
    console.print(tiers)
    routing = Table(title=f"auto: {figures['routing']['requests']:,} requests")
    for column in ("tier", "why", "calls"):
        routing.add_column(column, justify="right" if column == "calls" else "left")
    for row in figures["routing"]["by_reason"]:
        routing.add_row(row["tier"], row["why"], f"{row['requests']:,}")
    console.print(routing)
    anomalies = Table(title="anomalies")
    for column in ("kind", "who", "what"):
        anomalies.add_column(column)
    for a in figures["anomalies"]:
        anomalies.add_row(a["kind"], a["subject"], a["detail"])
    console.print(anomalies if figures["anomalies"] else "no anomalies")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
