"""Usage totals per group (model, UTC day, tenant, replica, version or key id) over a window of
the ledger.

Invariant: a request is its final ledger line; the lines of attempts that failed before
a fallback answered (``attempt_id``) are counted apart as failed attempts, never as more
requests. Both backends give the same totals: SQLite in one GROUP BY query, DynamoDB by
folding records into ``UsageTotals`` page by page as they stream in, so memory grows with
the number of groups, never with the number of records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

from edgeroute.store.base import UsageRecord

GroupBy = Literal["model", "day", "tenant", "replica", "version", "key"]
NO_MODEL = "(none)"  # the group of requests refused before a model (or replica) was known


@dataclass
class UsageTotals:
    """One group's sums. Tokens, cost, errors and cache hits are those of requests;
    failed attempts only count themselves."""

    group: str
    requests: int = 0
    failed_attempts: int = 0
    errors: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd_micros: int = 0
    latency_ms_total: float = 0.0  # of requests, for the mean shown

    def add(self, record: UsageRecord) -> None:
        if record.failed_attempt:
            self.failed_attempts += 1
            return
        self.requests += 1
        self.errors += record.status >= 400
        self.cache_hits += record.cache_hit
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.cost_usd_micros += record.cost_usd_micros
        self.latency_ms_total += record.latency_ms

    def merge(self, other: UsageTotals) -> None:
        for f in fields(self):
            if f.name != "group":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_row(self, group_by: str) -> dict[str, Any]:
        """The group as /v1/usage shows it."""
        row: dict[str, Any] = {group_by: self.group}
        shown = (f.name for f in fields(self) if f.name not in ("group", "latency_ms_total"))
        row.update((name, getattr(self, name)) for name in shown)
        row["total_tokens"] = self.prompt_tokens + self.completion_tokens
        row["cost_usd"] = self.cost_usd_micros / 1_000_000
        row["latency_ms_mean"] = (
            round(self.latency_ms_total / self.requests, 3) if self.requests else None
        )
        return row


def group_of(record: UsageRecord, group_by: GroupBy) -> str:
    if group_by == "day":
        return datetime.fromtimestamp(record.created_at, UTC).date().isoformat()
    if group_by == "tenant":
        return record.tenant
    if group_by == "replica":
        return record.replica or NO_MODEL
    if group_by == "version":
        return record.version or NO_MODEL
    if group_by == "key":
        return record.key_id
    return record.model or NO_MODEL


def fold(
    records: Iterable[UsageRecord],
    group_by: GroupBy,
    into: dict[str, UsageTotals] | None = None,
) -> dict[str, UsageTotals]:
    """Add records to per-group totals (a new set, or ``into``), consuming them one by one."""
    totals = {} if into is None else into
    for record in records:
        name = group_of(record, group_by)
        row = totals.get(name)
        if row is None:
            row = totals[name] = UsageTotals(name)
        row.add(record)
    return totals


def ordered(totals: Iterable[UsageTotals]) -> list[UsageTotals]:
    """Groups sorted by name: the order /v1/usage pages them in."""
    return sorted(totals, key=lambda t: t.group)


def grand_total(groups: Iterable[UsageTotals], name: str = "total") -> UsageTotals | None:
    """All groups summed into one; ``None`` when there are none."""
    out: UsageTotals | None = None
    for group in groups:
        out = out or UsageTotals(name)
        out.merge(group)
    return out
