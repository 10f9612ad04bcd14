"""``edgeroute usage``: the ledger's totals per model (or day, tenant, replica, version)
over a window, as a terminal table or JSON: the same sums as ``GET /v1/usage``."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any, get_args

from edgeroute.api.usage import default_window
from edgeroute.settings import Settings
from edgeroute.store import open_store
from edgeroute.store.usage import GroupBy
from edgeroute.tools.arguments import duration_s
from edgeroute.tools.usage_report import print_report, report_json

_COLUMNS = (
    ("requests", "requests"),
    ("errors", "errors"),
    ("failed_attempts", "failed"),
    ("cache_hits", "cached"),
    ("prompt_tokens", "prompt tok"),
    ("completion_tokens", "output tok"),
    ("cost_usd", "cost USD"),
    ("latency_ms_mean", "mean ms"),
)


def render(rows: list[dict[str, Any]], group_by: str) -> str:
    """A table with a column per total, aligned for a terminal."""
    header = [group_by, *(title for _, title in _COLUMNS)]
    cells = [[str(row[group_by]), *(_cell(row[name]) for name, _ in _COLUMNS)] for row in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in [header, *cells]
    ]
    return "\n".join(lines) if cells else "no usage in this window"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") or "0"
    return str(value)


async def _usage(args: argparse.Namespace, settings: Settings) -> int:
    if args.report:
        return await _report(args, settings)
    if args.since is None:
        start, end = (w.timestamp() for w in default_window(datetime.now(UTC)))
    else:
        end = time.time()
        start = end - args.since
    store = open_store(settings)
    try:
        groups = await store.summarize_usage(start, end, args.tenant, args.by)
    finally:
        await store.close()
    rows = [g.as_row(args.by) for g in groups]
    if args.json:
        print(json.dumps({"start": start, "end": end, "group_by": args.by, "data": rows}))
    else:
        print(render(rows, args.by))
    return 0


async def _report(args: argparse.Namespace, settings: Settings) -> int:
    """The dashboard's figures: the last 24 hours unless ``--since`` says otherwise."""
    end = time.time()
    start = end - (args.since if args.since is not None else 86400)
    store = open_store(settings)
    try:
        figures = await report_json(store, start, end, args.tenant)
    finally:
        await store.close()
    print_report(figures, args.json)
    return 0


def add_usage_parser(sub: Any) -> None:
    """The ``usage`` command, under the main parser's ``sub``."""
    usage = sub.add_parser("usage", help="the ledger's totals per model over a window")
    usage.add_argument(
        "--since",
        type=duration_s,
        metavar="DURATION",
        help="the window ending now, e.g. 24h or 7d (default: this UTC month)",
    )
    usage.add_argument("--tenant", help="one tenant's usage (default: every tenant's)")
    usage.add_argument("--by", choices=get_args(GroupBy), default="model")
    usage.add_argument("--json", action="store_true", help="print the totals as JSON")
    usage.add_argument(
        "--report",
        action="store_true",
        help="the dashboard's figures (spend by model, tenant and key, latency by tier, cache, "
        "rates, auto's decisions, anomalies; default: the last 24h)",
    )
    usage.set_defaults(func=_usage)
