"""Usage records for unit tests of the ledger and its reports."""

from __future__ import annotations

from edgeroute.store.base import UsageRecord


def usage_line(
    request_id: str, *, status: int = 200, tokens: int = 0, created_at: float = 1_700_000_000.0
) -> UsageRecord:
    """One ledger line on model ``m`` of key ``k``, tenant ``t``: ``tokens`` in and out,
    costing ``tokens`` micro-dollars."""
    return UsageRecord(
        request_id=request_id,
        key_id="k",
        tenant="t",
        endpoint="chat",
        model="m",
        tier="small",
        prompt_tokens=tokens,
        completion_tokens=tokens,
        cost_usd_micros=tokens,
        latency_ms=1.0,
        status=status,
        created_at=created_at,
    )
