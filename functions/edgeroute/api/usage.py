"""Usage between two dates, grouped by model, day, tenant, or the replica (or its version
label) that served it, from the usage ledger: a canary is compared with the rest by its
rows' errors, failed attempts and mean latency."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from edgeroute.errors import InvalidRequest
from edgeroute.store.base import UsageRecord

GroupBy = Literal["model", "day", "tenant", "replica", "version"]


def parse_when(value: str | None, param: str, default: datetime) -> datetime:
    """An ISO date (``2026-11-01``), datetime, or epoch seconds, read as UTC."""
    if value is None or value == "":
        return default
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        raise InvalidRequest(
            f"Invalid '{param}' {value!r}: use an ISO date such as 2026-11-01, a datetime "
            "such as 2026-11-01T12:00:00Z, or epoch seconds.",
            param=param,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def default_window(now: datetime) -> tuple[datetime, datetime]:
    """The current UTC month so far (and the rest of today)."""
    today = now.date()
    start = datetime(today.year, today.month, 1, tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    return start, end


def end_of(value: str | None, parsed: datetime) -> datetime:
    """A bare date as the end means the whole of that day is included."""
    if value and len(value) == 10:
        return parsed + timedelta(days=1)
    return parsed


def _group(record: UsageRecord, group_by: GroupBy) -> str:
    if group_by == "day":
        return date.fromtimestamp(record.created_at).isoformat()
    if group_by == "tenant":
        return record.tenant
    if group_by == "replica":
        return record.replica or "(none)"
    if group_by == "version":
        return record.version or "(none)"
    return record.model or "(none)"


def summarize(records: list[UsageRecord], group_by: GroupBy) -> list[dict[str, Any]]:
    """Totals per group. A request is its final ledger line; the lines of attempts that
    failed before a fallback answered are counted apart, never as more requests."""
    totals: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "requests": 0,
            "failed_attempts": 0,
            "errors": 0,
            "cache_hits": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "cost_usd_micros": 0,
            "latency_ms_total": 0.0,
        }
    )
    for record in records:
        row = totals[_group(record, group_by)]
        if record.failed_attempt:
            row["failed_attempts"] += 1
            continue
        row["requests"] += 1
        row["errors"] += record.status >= 400
        row["cache_hits"] += record.cache_hit
        row["prompt_tokens"] += record.prompt_tokens
        row["completion_tokens"] += record.completion_tokens
        row["total_tokens"] += record.prompt_tokens + record.completion_tokens
        row["cost_usd_micros"] += record.cost_usd_micros
        row["latency_ms_total"] += record.latency_ms
    out = []
    for name in sorted(totals):
        row = totals[name]
        row["cost_usd"] = row["cost_usd_micros"] / 1_000_000
        total_ms = row.pop("latency_ms_total")
        row["latency_ms_mean"] = round(total_ms / row["requests"], 3) if row["requests"] else None
        out.append({group_by: name, **row})
    return out


MAX_PAGE = 1000


def page(
    rows: list[dict[str, Any]], group_by: GroupBy, limit: int, after: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """Rows after the cursor ``after`` (a group's name; rows are sorted by it), at most
    ``limit`` of them, and whether more follow."""
    if after is not None:
        rows = [row for row in rows if str(row[group_by]) > after]
    return rows[:limit], len(rows) > limit
