"""Usage anomalies found in the ledger: a key or tenant whose calls or spend in the last
hour jump far above its own baseline (the mean of the hours before), and the same
failing request sent again and again.

Invariant: a subject is judged only against itself, and only with enough volume to mean
something (``Thresholds``), so a quiet key's first few calls are never an anomaly. The
window is the ``baseline_hours`` hours before the last hour, zeros included.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from edgeroute.store.base import UsageRecord

Kind = Literal["calls_spike", "spend_spike", "repeated_failures"]
KINDS: tuple[Kind, ...] = ("calls_spike", "spend_spike", "repeated_failures")
HOUR = 3600


@dataclass(frozen=True)
class Thresholds:
    baseline_hours: int = 24
    factor: float = 5.0  # the last hour above this many times the baseline's mean
    min_calls: int = 20  # ... and at least this many calls
    min_spend_micros: int = 10_000  # ... or this much spend ($0.01)
    repeats: int = 10  # the same failing request this many times in the last hour


@dataclass(frozen=True)
class Anomaly:
    kind: Kind
    subject: str  # "key <id>", "tenant <name>"
    detail: str
    value: float  # the last hour's figure
    baseline: float  # the mean per hour before it (repeated failures: 0)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def window_start(end: float, thresholds: Thresholds = Thresholds()) -> float:
    """Where the records ``detect`` needs begin: the baseline hours and the last one."""
    return end - (thresholds.baseline_hours + 1) * HOUR


def detect(
    records: Iterable[UsageRecord], end: float, thresholds: Thresholds = Thresholds()
) -> list[Anomaly]:
    """Anomalies in the hour before ``end``, against the ``baseline_hours`` before it."""
    hours = thresholds.baseline_hours
    calls: dict[str, Counter[int]] = defaultdict(Counter)
    spend: dict[str, Counter[int]] = defaultdict(Counter)
    failing: Counter[tuple[str, str]] = Counter()
    for record in records:
        if record.failed_attempt or not window_start(end, thresholds) <= record.created_at < end:
            continue
        hour = int((end - record.created_at) // HOUR)  # 0: the last hour
        for subject in (f"key {record.key_id}", f"tenant {record.tenant}"):
            calls[subject][hour] += 1
            spend[subject][hour] += record.cost_usd_micros
        if hour == 0 and record.status >= 400 and record.fingerprint:
            failing[(f"key {record.key_id}", f"{record.fingerprint} ({record.status})")] += 1
    found: list[Anomaly] = []
    for subject in sorted(calls):
        found += _spike(
            "calls_spike", subject, calls[subject], hours, thresholds.min_calls, thresholds
        )
        found += _spike(
            "spend_spike", subject, spend[subject], hours, thresholds.min_spend_micros, thresholds
        )
    for (subject, what), n in sorted(failing.items()):
        if n >= thresholds.repeats:
            found.append(
                Anomaly(
                    "repeated_failures",
                    subject,
                    f"the same failing request {n} times in the last hour: {what}",
                    n,
                    0,
                )
            )
    return found


def _spike(
    kind: Kind,
    subject: str,
    by_hour: Counter[int],
    hours: int,
    least: float,
    thresholds: Thresholds,
) -> list[Anomaly]:
    now = by_hour[0]
    mean = sum(by_hour[h] for h in range(1, hours + 1)) / hours
    if now < least or now <= thresholds.factor * mean:
        return []
    unit = "calls" if kind == "calls_spike" else "micro-USD"
    detail = f"{now:,.0f} {unit} in the last hour, {mean:,.1f} per hour over the {hours} before"
    return [Anomaly(kind, subject, detail, now, round(mean, 3))]
