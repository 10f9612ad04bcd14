"""Rounds of measurements, alternating between systems, and their medians.

Each round visits every system once, in an order rotated by one each round, so a busy
spell on the machine does not land on one system only. Within a round the direct call
is measured too, and *added* figures are a system's minus the direct call's of the same
round; the reported figure is the median over rounds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.compare.load_client import WARM_REQUESTS, pct
from bench.compare.systems import REPO, System, cpu_seconds, pinned

P99_LIMIT_MS = 50.0


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float  # each phase's length
    open_steps: int  # rates tried per system per round


QUICK = Plan(rounds=2, seconds=0.75, open_steps=3)
FULL = Plan(rounds=3, seconds=2.0, open_steps=5)


@dataclass
class Figures:
    """One system's figures, one entry per round."""

    p50: list[float] = field(default_factory=list)
    p90: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    rps16: list[float] = field(default_factory=list)
    rps64: list[float] = field(default_factory=list)
    open_rate: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # the system's CPU per request
    rss_mib: float = 0.0


def client(system: System, phases: list[str], seconds: float, cpus: set[int]) -> dict[str, Any]:
    spec = {"url": system.url, "headers": system.headers, "seconds": seconds, "phases": phases}
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare.load_client", json.dumps(spec)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        preexec_fn=pinned(cpus),
    )
    if done.returncode != 0:
        raise RuntimeError(f"client against {system.name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def highest_open_rate(system: System, start: float, plan: Plan, cpus: set[int]) -> float:
    """The highest rate tried whose p99 stayed under the limit: up by 1.4x from
    ``start`` while it holds, down by 0.6x while it does not; 0 if none held."""
    best, rate = 0.0, max(start, 5.0)
    for _ in range(plan.open_steps):
        phase = f"open:{rate:.0f}"
        p99 = client(system, [phase], plan.seconds, cpus)[phase]
        if p99 < P99_LIMIT_MS:
            best = max(best, rate)
            rate *= 1.4
        elif best:
            break
        else:
            rate *= 0.6
    return best


def one_round(system: System, plan: Plan, cpus: set[int], figures: Figures) -> None:
    before = cpu_seconds(system.proc.pid) if system.proc else 0.0
    got = client(system, ["sequential"], plan.seconds, cpus)
    if system.proc:
        spent = cpu_seconds(system.proc.pid) - before
        figures.cpu_ms.append(spent * 1000 / (len(got["sequential"]) + WARM_REQUESTS))
    got |= client(system, ["stream", "closed:16", "closed:64"], plan.seconds, cpus)
    figures.p50.append(statistics.median(got["sequential"]))
    figures.p90.append(pct(got["sequential"], 0.90))
    figures.p99.append(pct(got["sequential"], 0.99))
    figures.ttfb.append(statistics.median(got["stream"]))
    figures.rps16.append(got["closed:16"])
    figures.rps64.append(got["closed:64"])
    figures.open_rate.append(highest_open_rate(system, 0.6 * got["closed:16"], plan, cpus))


def measure(systems: list[System], plan: Plan, cpus: set[int]) -> dict[str, Figures]:
    figures = {s.name: Figures() for s in systems}
    for r in range(plan.rounds):
        shift = r % len(systems)
        for system in systems[shift:] + systems[:shift]:
            one_round(system, plan, cpus, figures[system.name])
            print(f"round {r + 1}/{plan.rounds}: {system.name} measured", file=sys.stderr)
    return figures


def added(figures: dict[str, Figures], name: str, attr: str) -> float:
    """The median over rounds of a system's figure minus the direct call's."""
    mine: list[float] = getattr(figures[name], attr)
    direct: list[float] = getattr(figures["direct"], attr)
    return statistics.median(m - d for m, d in zip(mine, direct, strict=True))


def median(figures: dict[str, Figures], name: str, attr: str) -> float:
    values: list[float] = getattr(figures[name], attr)
    return statistics.median(values)
