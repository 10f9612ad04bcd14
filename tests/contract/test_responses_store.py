"""The stored Responses contract (store/responses.py): the same tests on SQLite and on
DynamoDB (moto server)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from edgeroute.store import Store
from tests.contract.conftest import StoreFactory


def _record(response_id: str, status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {
        "id": response_id,
        "tenant": "acme",
        "status": status,
        "holder": "",
        "lease_until": 0.0,
        "response": {"id": response_id, "status": status},
        **extra,
    }


async def test_a_record_is_read_back_only_by_its_tenant(store: Store) -> None:
    record = _record("resp_1")
    await store.responses.put("acme", "resp_1", record, time.time() + 60)
    assert await store.responses.get("acme", "resp_1") == record
    assert await store.responses.get("other", "resp_1") is None
    assert await store.responses.get("acme", "resp_2") is None


async def test_an_expired_record_is_gone(store: Store) -> None:
    await store.responses.put("acme", "old", _record("old"), time.time() - 1)
    assert await store.responses.get("acme", "old") is None
    assert await store.responses.pending() == []


async def test_swap_writes_only_over_the_state_it_read(store: Store) -> None:
    queued = _record("resp_1")
    await store.responses.put("acme", "resp_1", queued, None)
    claimed = dict(queued, status="in_progress", holder="w1", lease_until=time.time() + 30)
    assert await store.responses.swap("acme", "resp_1", queued, claimed, None)
    # A second claim from the same stale read loses: one worker per job.
    other = dict(claimed, holder="w2")
    assert not await store.responses.swap("acme", "resp_1", queued, other, None)
    cancelled = dict(claimed, status="cancelled", holder="", lease_until=0.0)
    assert await store.responses.swap("acme", "resp_1", claimed, cancelled, None)
    # The worker's finish, from its own last read, no longer applies.
    done = dict(claimed, status="completed")
    assert not await store.responses.swap("acme", "resp_1", claimed, done, None)
    assert (await store.responses.get("acme", "resp_1") or {})["status"] == "cancelled"
    # Another tenant's key is another record: nothing to swap.
    assert not await store.responses.swap("other", "resp_1", cancelled, done, None)


async def test_only_one_of_two_concurrent_claims_wins(store_factory: StoreFactory) -> None:
    first, second = store_factory(), store_factory()
    queued = _record("resp_1")
    await first.responses.put("acme", "resp_1", queued, None)
    claims = [
        s.responses.swap(
            "acme", "resp_1", queued, dict(queued, status="in_progress", holder=h), None
        )
        for s, h in ((first, "w1"), (second, "w2"))
    ]
    assert sorted(await asyncio.gather(*claims)) == [False, True]


async def test_pending_lists_queued_and_running_records_of_every_tenant(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    await store.responses.put("acme", "q", _record("q"), None)
    await store.responses.put("beta", "r", _record("r", "in_progress", holder="w"), None)
    await store.responses.put("acme", "c", _record("c", "completed"), None)
    await store.put_job("batch-1", {"status": "in_progress"})  # a batch job is not a response
    # Another process (connection or client) on the same data sees them.
    found = await store_factory().responses.pending()
    assert sorted(r["id"] for r in found) == ["q", "r"]


async def test_delete_says_whether_there_was_a_record(store: Store) -> None:
    await store.responses.put("acme", "resp_1", _record("resp_1", "completed"), None)
    assert not await store.responses.delete("other", "resp_1")
    assert await store.responses.delete("acme", "resp_1")
    assert await store.responses.get("acme", "resp_1") is None
    assert not await store.responses.delete("acme", "resp_1")
