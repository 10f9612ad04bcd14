"""/v1/usage's totals count requests, not ledger lines: a request whose first attempts
failed before a fallback answered is one request (once 13 requests were shown for 9).
The totals are summed in the store: SQLite's GROUP BY and the fold DynamoDB streams its
pages through must agree (tests/contract runs both backends)."""

from __future__ import annotations

from typing import Any

from edgeroute.store.base import UsageRecord, attempt_id
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.store.usage import GroupBy, fold, ordered
from tests.support.records import usage_line


def _line(request_id: str, status: int, tokens: int = 0) -> UsageRecord:
    return usage_line(request_id, status=status, tokens=tokens)


async def summarize(records: list[UsageRecord], group_by: GroupBy) -> list[dict[str, Any]]:
    """The rows /v1/usage shows, from SQLite's query; the streaming fold gives the same."""
    store = SQLiteStore(":memory:")
    for record in records:
        await store.record_usage(record)
    grouped = await store.summarize_usage(0, 2e9, None, group_by)
    await store.close()
    assert grouped == ordered(fold(records, group_by).values())
    return [g.as_row(group_by) for g in grouped]


async def test_failed_attempts_are_not_requests() -> None:
    records = [_line(f"r{i}", 200, tokens=10) for i in range(9)]
    # Requests r0..r3 each failed once (502) before the fallback answered.
    records += [_line(attempt_id(f"r{i}", 1), 502) for i in range(4)]
    (row,) = await summarize(records, "model")
    assert row["requests"] == 9
    assert row["failed_attempts"] == 4
    assert row["errors"] == 0  # the requests were answered
    assert row["total_tokens"] == 9 * 20


async def test_a_request_that_failed_everywhere_is_one_error() -> None:
    records = [_line(attempt_id("r", 1), 502), _line(attempt_id("r", 2), 504), _line("r", 504)]
    (row,) = await summarize(records, "day")
    assert (row["requests"], row["failed_attempts"], row["errors"]) == (1, 2, 1)


async def test_usage_pages_by_group() -> None:
    import dataclasses

    import httpx

    from edgeroute.store.base import KeyLimits
    from tests.support.inprocess import Client, add_key, memory_gateway

    gw = memory_gateway("models: []")
    secret, key = await add_key(gw, limits=KeyLimits())
    client = Client(gw, secret)
    day = 86_400
    for n in range(5):  # five days of one record each, this month
        at = 1_767_225_600.0 + n * day  # 2026-01-01 on
        await gw.store.record_usage(
            dataclasses.replace(usage_line(f"r{n}", created_at=at), tenant=key.tenant)
        )
    transport = httpx.ASGITransport(app=client.app)
    headers = {"authorization": f"Bearer {secret}"}
    window = {"start": "2026-01-01", "end": "2026-01-31", "group_by": "day"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        first = (await http.get("/v1/usage", params={**window, "limit": 2}, headers=headers)).json()
        assert [row["day"] for row in first["data"]] == ["2026-01-01", "2026-01-02"]
        assert first["has_more"] is True and first["last_id"] == "2026-01-02"
        rest = await http.get(
            "/v1/usage", params={**window, "limit": 10, "after": first["last_id"]}, headers=headers
        )
        assert [row["day"] for row in rest.json()["data"]] == [
            "2026-01-03",
            "2026-01-04",
            "2026-01-05",
        ]
        assert rest.json()["has_more"] is False and rest.json()["total"]["requests"] == 5
        bad = await http.get("/v1/usage", params={**window, "limit": 0}, headers=headers)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
