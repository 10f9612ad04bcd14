"""The Store contract for leases (per-key concurrency slots), on SQLite and DynamoDB."""

from __future__ import annotations

import asyncio
import time

from edgeroute.store import Store
from tests.contract.conftest import StoreFactory


async def test_concurrent_acquires_admit_exactly_the_limit(store: Store) -> None:
    now = time.time()
    results = await asyncio.gather(
        *(store.acquire_lease("k1#concurrent", f"r{i}", 5, now + 60, now) for i in range(40))
    )
    admitted = [i for i, r in enumerate(results) if r.admitted]
    assert len(admitted) == 5
    assert all(r.value == 5 for r in results if not r.admitted)
    # A released slot is free again, for one more holder only.
    await store.release_lease("k1#concurrent", f"r{admitted[0]}")
    assert (await store.acquire_lease("k1#concurrent", "late", 5, now + 60, now)).admitted
    assert not (await store.acquire_lease("k1#concurrent", "later", 5, now + 60, now)).admitted


async def test_acquires_from_two_stores_share_the_limit(store_factory: StoreFactory) -> None:
    # Two connections or clients, as two gateway instances would have.
    first, second = store_factory(), store_factory()
    now = time.time()
    results = await asyncio.gather(
        *(
            (first if i % 2 else second).acquire_lease("k#c", f"r{i}", 3, now + 60, now)
            for i in range(12)
        )
    )
    assert sum(r.admitted for r in results) == 3


async def test_an_expired_lease_frees_its_slot(store: Store) -> None:
    now = time.time()
    assert (await store.acquire_lease("k#c", "crashed", 2, now + 1, now)).admitted
    assert (await store.acquire_lease("k#c", "alive", 2, now + 60, now)).admitted
    assert not (await store.acquire_lease("k#c", "new", 2, now + 60, now)).admitted
    # Past the crashed holder's lease its slot is taken by the next caller.
    later = now + 2
    taken = await store.acquire_lease("k#c", "new", 2, later + 60, later)
    assert taken.admitted and taken.value == 2
    assert not (await store.acquire_lease("k#c", "newer", 2, later + 60, later)).admitted


async def test_release_is_idempotent_and_names_are_independent(store: Store) -> None:
    now = time.time()
    await store.release_lease("never", "nobody")  # nothing held: no error
    assert (await store.acquire_lease("a#c", "r1", 1, now + 60, now)).admitted
    assert (await store.acquire_lease("b#c", "r1", 1, now + 60, now)).admitted
    # The same holder asking again keeps its one slot.
    assert (await store.acquire_lease("a#c", "r1", 1, now + 60, now)).admitted
    await store.release_lease("a#c", "r1")
    await store.release_lease("a#c", "r1")
    assert (await store.acquire_lease("a#c", "r2", 1, now + 60, now)).value == 1
    assert not (await store.acquire_lease("b#c", "r2", 1, now + 60, now)).admitted
