"""/v1/usage's totals count requests, not ledger lines: a request whose first attempts
failed before a fallback answered is one request (once 13 requests were shown for 9)."""

from __future__ import annotations

from edgeroute.api.usage import summarize
from edgeroute.store.base import UsageRecord, attempt_id
from tests.support.records import usage_line


def _line(request_id: str, status: int, tokens: int = 0) -> UsageRecord:
    return usage_line(request_id, status=status, tokens=tokens)


def test_failed_attempts_are_not_requests() -> None:
    records = [_line(f"r{i}", 200, tokens=10) for i in range(9)]
    # Requests r0..r3 each failed once (502) before the fallback answered.
    records += [_line(attempt_id(f"r{i}", 1), 502) for i in range(4)]
    (row,) = summarize(records, "model")
    assert row["requests"] == 9
    assert row["failed_attempts"] == 4
    assert row["errors"] == 0  # the requests were answered
    assert row["total_tokens"] == 9 * 20


def test_a_request_that_failed_everywhere_is_one_error() -> None:
    records = [_line(attempt_id("r", 1), 502), _line(attempt_id("r", 2), 504), _line("r", 504)]
    (row,) = summarize(records, "day")
    assert (row["requests"], row["failed_attempts"], row["errors"]) == (1, 2, 1)
