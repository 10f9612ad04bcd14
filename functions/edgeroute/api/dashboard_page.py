"""The dashboard's HTML: the report's figures (``store/report.py``) as tiles and SVG
charts (``api/charts.py``), and the sign-in form. No script; one small stylesheet
inline; a single column on a phone, two beside each other on a wider screen."""

from __future__ import annotations

from html import escape
from typing import Any

from edgeroute.api.charts import Bar, bar_chart, share_chart

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}

_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:12px;color:#1b1f24;background:#f6f7f9}
h1{font-size:20px;margin:4px 0 12px}
form.range{margin-bottom:12px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px}
.tile{background:#fff;border-radius:8px;padding:10px}
.tile b{display:block;font-size:20px}
.charts{display:grid;grid-template-columns:1fr;gap:12px;margin-top:12px}
@media (min-width:900px){.charts{grid-template-columns:1fr 1fr}}
figure.chart{background:#fff;border-radius:8px;margin:0;padding:10px;overflow:hidden}
figcaption{font-weight:600;margin-bottom:6px}
svg text{font-size:13px;fill:#1b1f24}
.legend{list-style:none;padding:0;margin:6px 0 0}
.legend li{display:inline-block;margin-right:12px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.note,.empty{color:#5d6d7e;font-size:13px}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{padding:4px 6px;border-bottom:1px solid #e3e6ea;text-align:left}
"""


def usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:,.6f}".rstrip("0").rstrip(".")


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _tile(name: str, title: str, value: float, shown: str) -> str:
    return (
        f'<div class="tile" data-figure="{name}" data-value="{value!r}">'
        f"{escape(title)}<b>{escape(shown)}</b></div>"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def _spend_and_calls(rows: list[dict[str, Any]], by: str, what: str) -> str:
    spend = [Bar(str(r[by]), r["cost_usd"], usd(r["cost_usd"])) for r in rows]
    calls = [Bar(str(r[by]), r["requests"], f"{r['requests']:,}") for r in rows]
    return bar_chart(f"spend-by-{what}", f"Spend by {what}", spend) + bar_chart(
        f"calls-by-{what}", f"Calls by {what}", calls
    )


def _range_form(chosen: str, tenant: str | None) -> str:
    options = "".join(
        f'<option value="{r}"{" selected" if r == chosen else ""}>{r}</option>' for r in RANGES
    )
    kept = f'<input type="hidden" name="tenant" value="{escape(tenant)}">' if tenant else ""
    return (
        f'<form class="range" method="get" action="/dashboard">Range '
        f'<select name="range">{options}</select>{kept} <button type="submit">Show</button></form>'
    )


def dashboard_html(report: dict[str, Any], chosen: str, anomalies: list[dict[str, Any]]) -> str:
    t = report["totals"]
    tiles = "".join(
        [
            _tile("cost_usd", "Spend", t["cost_usd"], usd(t["cost_usd"])),
            _tile("requests", "Calls", t["requests"], f"{t['requests']:,}"),
            _tile(
                "cache_hit_rate", "Cache hit rate", t["cache_hit_rate"], pct(t["cache_hit_rate"])
            ),
            _tile("saved_usd", "Saved by the cache", t["saved_usd"], usd(t["saved_usd"])),
            _tile("edge_share", "Answered at the edge", t["edge_share"], pct(t["edge_share"])),
            _tile("error_rate", "Errors", t["error_rate"], pct(t["error_rate"])),
        ]
    )
    tiers = report["by_tier"]
    latency = [
        Bar(f"{row['tier']} p{p}", row[f"p{p}_ms"], f"{row[f'p{p}_ms']:,.0f} ms")
        for row in tiers
        for p in (50, 95, 99)
        if row.get(f"p{p}_ms") is not None
    ]
    edge = t["edge_share"]
    rates = [
        Bar(name, t[f"{key}_rate"], pct(t[f"{key}_rate"]))
        for name, key in (("errors", "error"), ("fallbacks", "fallback"), ("degraded", "degraded"))
    ]
    hit = t["cache_hit_rate"]
    routing = report["routing"]
    charts = "".join(
        [
            _spend_and_calls(report["by_model"], "model", "model"),
            _spend_and_calls(report["by_tenant"], "tenant", "tenant"),
            _spend_and_calls(report["by_key"], "key", "key"),
            share_chart(
                "edge-share",
                "Edge vs GPU (requests answered)",
                [
                    Bar("edge", edge, pct(edge)),
                    Bar("GPU", 1 - edge if t["requests"] else 0, pct(1 - edge)),
                ],
            ),
            bar_chart("latency-by-tier", "Latency by tier (p50, p95, p99)", latency),
            share_chart(
                "cache",
                "Cache",
                [
                    Bar("hits", hit, pct(hit)),
                    Bar("upstream", 1 - hit if t["requests"] else 0, pct(1 - hit)),
                ],
                note=f"saved about {usd(t['saved_usd'])} (each hit at its model's mean cost)",
            ),
            bar_chart("rates", "Error, fallback and degraded rates", rates),
            bar_chart(
                "routing-by-tier",
                f"auto: {routing['requests']:,} requests by tier",
                [Bar(tier, n, f"{n:,}") for tier, n in routing["by_tier"].items()],
            ),
            bar_chart(
                "routing-why",
                "auto: why",
                [
                    Bar(f"{r['tier']}: {r['why']}", r["requests"], f"{r['requests']:,}")
                    for r in routing["by_reason"]
                ],
            ),
        ]
    )
    title = f"edgeroute: the last {chosen}" + (
        f" for tenant {report['tenant']}" if report["tenant"] != "all" else ""
    )
    tenant = None if report["tenant"] == "all" else report["tenant"]
    body = (
        f"<h1>{escape(title)}</h1>{_range_form(chosen, tenant)}"
        f'<div class="tiles">{tiles}</div>{_anomalies(anomalies)}<div class="charts">{charts}</div>'
    )
    return _page("edgeroute dashboard", body)


def _anomalies(found: list[dict[str, Any]]) -> str:
    if not found:
        return '<section id="anomalies" data-count="0"><p class="note">No anomalies.</p></section>'
    rows = "".join(
        f'<tr class="anomaly" data-kind="{escape(a["kind"])}"><td>{escape(a["kind"])}</td>'
        f"<td>{escape(a['subject'])}</td><td>{escape(a['detail'])}</td></tr>"
        for a in found
    )
    return (
        f'<section id="anomalies" data-count="{len(found)}"><h2>Anomalies</h2>'
        f"<table><tr><th>kind</th><th>who</th><th>what</th></tr>{rows}</table></section>"
    )


def sign_in_html(message: str = "") -> str:
    shown = f'<p class="note" role="alert">{escape(message)}</p>' if message else ""
    return _page(
        "edgeroute dashboard: sign in",
        "<h1>edgeroute dashboard</h1>"
        f"{shown}"
        '<form method="post" action="/dashboard/session">'
        '<label>Admin API key <input type="password" name="key" autocomplete="off" required>'
        '</label> <button type="submit">Sign in</button></form>'
        '<p class="note">The key is sent once; a signed session cookie (8 hours, this '
        "path only) stands in for it after.</p>",
    )
