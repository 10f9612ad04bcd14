"""Usage between two dates, grouped by model, day, tenant, or the replica (or its version
label) that served it: the store sums the ledger per group (``store.usage``); this module
reads the window and pages the groups. A canary is compared with the rest by its rows'
errors, failed attempts and mean latency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edgeroute.errors import InvalidRequest
from edgeroute.store.usage import UsageTotals


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


MAX_PAGE = 1000


def page(
    groups: list[UsageTotals], limit: int, after: str | None
) -> tuple[list[UsageTotals], bool]:
    """Groups after the cursor ``after`` (a group's name; groups are sorted by it), at
    most ``limit`` of them, and whether more follow."""
    if after is not None:
        groups = [g for g in groups if g.group > after]
    return groups[:limit], len(groups) > limit
