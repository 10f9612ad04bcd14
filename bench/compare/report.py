"""The side-by-side section of docs/benchmarks.md: the table, the ratios to the floor and
to LiteLLM, and the targets met or not. ``write`` replaces only this section (between
its markers), keeping every other one."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from bench.compare.measure import Figures, Plan, added, median

BEGIN = "<!-- side-by-side: begin (written by `python -m bench compare`) -->"
END = "<!-- side-by-side: end -->"
EDGEROUTE = "edgeroute"  # the defaults a user gets

LABELS = {
    "direct": "direct call (no proxy)",
    "floor": "floor: FastAPI + aiohttp pass-through",
    "litellm": "LiteLLM proxy",
    "edgeroute": "edgeroute, defaults",
    "edgeroute-auto": "edgeroute, `EDGEROUTE_CLASSIFY=auto`",
    "edgeroute-always": "edgeroute, `EDGEROUTE_CLASSIFY=always` (the old default)",
}


def _ms(value: float) -> str:
    return f"{value:.2f} ms"


def _row(figures: dict[str, Figures], name: str, label: str) -> str:
    f = figures[name]
    if name == "direct":
        latency = [f"({_ms(median(figures, name, a))})" for a in ("p50", "p90", "p99", "ttfb")]
    else:
        latency = [_ms(added(figures, name, a)) for a in ("p50", "p90", "p99", "ttfb")]
    rates = [f"{median(figures, name, a):,.0f}" for a in ("rps16", "rps64", "open_rate")]
    rss = f"{f.rss_mib:.0f} MiB" if f.rss_mib else "-"
    cpu = f"{median(figures, name, 'cpu_ms'):.2f} ms" if f.cpu_ms else "-"
    return "| " + " | ".join([label, *latency, *rates, cpu, rss]) + " |"


def _ratio(mine: float, theirs: float) -> str:
    return f"{mine / theirs:.2f}x" if theirs > 0 else f"{mine:,.0f} req/s; the other held none"


def targets(figures: dict[str, Figures]) -> list[tuple[str, str, bool]]:
    """(target, edgeroute's figure against it, met) for each target that can be judged."""
    if EDGEROUTE not in figures or "floor" not in figures:
        return []
    e_p50, f_p50 = added(figures, EDGEROUTE, "p50"), added(figures, "floor", "p50")
    e_ttfb, f_ttfb = added(figures, EDGEROUTE, "ttfb"), added(figures, "floor", "ttfb")
    e_open, f_open = median(figures, EDGEROUTE, "open_rate"), median(figures, "floor", "open_rate")
    rss = figures[EDGEROUTE].rss_mib
    rows = [
        ("added p50 <= 1.5x the floor's", _ratio(e_p50, f_p50), e_p50 <= 1.5 * f_p50),
        ("open-loop rate >= 2/3 of the floor's", _ratio(e_open, f_open), e_open >= f_open * 2 / 3),
        (
            "added streaming TTFB <= 1.5x the floor's",
            _ratio(e_ttfb, f_ttfb),
            e_ttfb <= 1.5 * f_ttfb,
        ),
        ("peak RSS <= 150 MiB, edge models loaded", f"{rss:.0f} MiB", rss <= 150),
    ]
    if "litellm" in figures:
        l_p50, l_open = added(figures, "litellm", "p50"), median(figures, "litellm", "open_rate")
        rows.insert(
            1, ("added p50 <= 1/10 of LiteLLM's", _ratio(e_p50, l_p50), e_p50 * 10 <= l_p50)
        )
        rows.insert(
            3, ("open-loop rate >= 10x LiteLLM's", _ratio(e_open, l_open), e_open >= 10 * l_open)
        )
    return rows


def section(
    figures: dict[str, Figures],
    plan: Plan,
    pinning: str,
    skipped: list[str],
    lambda_part: Sequence[str] = (),
) -> str:
    today = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    header = (
        "| one run (medians of rounds) | added p50 | added p90 | added p99 | added TTFB, "
        "stream | req/s, 16 conn. | req/s, 64 conn. | max open-loop req/s, p99 < 50 ms "
        "| CPU per request | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [_row(figures, n, LABELS.get(n, n)) for n in figures]
    lines = [
        BEGIN,
        "## Side by side: edgeroute, LiteLLM's proxy and a bare proxy (`bench/compare/`)",
        "",
        f"Method: one run on {today} ({machine}; {pinning}). An instant upstream",
        "(`tests/support/fault_upstream.py`), each system as its own process with one worker",
        "and the same model behind it, and one aiohttp client in its own process. "
        f"{plan.rounds} rounds; each round visits every system in turn (the order rotates)",
        f"and runs {plan.seconds:g} s per phase: sequential requests on one keep-alive",
        "connection (*added* p50/p90/p99: the system's minus the direct call's in the same",
        "round), sequential streamed requests (time to the first body byte), closed-loop load",
        "at 16 and 64 connections, and open-loop load at fixed rates (latency counted from",
        "when each request was due), stepping the rate to find the highest with p99 under",
        "50 ms. Figures are medians over rounds; the direct call's own latencies are in",
        "parentheses. LiteLLM runs from its own venv (`.venv-litellm`, `make litellm-venv`)",
        "with one master key, no database and no cache. The machine is shared with other",
        "work: compare figures within this table, not across runs.",
        "",
        header,
        *rows,
    ]
    if skipped:
        lines += ["", "Not measured in this run: " + "; ".join(skipped) + "."]
    judged = targets(figures)
    if judged:
        lines += ["", "| target (edgeroute, defaults) | this run | met |", "|---|---|---|"]
        lines += [f"| {t} | {v} | {'yes' if ok else '**no**'} |" for t, v, ok in judged]
    if lambda_part:
        lines += ["", *lambda_part]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write(doc: Path, text: str) -> None:
    """Replace the section between the markers, or put it before the first section."""
    old = doc.read_text() if doc.is_file() else "# Benchmarks\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + text + ("\n" + tail if tail else "")
    elif "\n## " in old:
        head, tail = old.split("\n## ", 1)
        new = head.rstrip("\n") + "\n\n" + text + "\n## " + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    doc.write_text(new)
