"""The Store contract: the same tests on SQLite and on DynamoDB (moto server)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import replace

from edgeroute.store import ApiKey, KeyLimits, KeyPolicy, Store, UsageRecord
from edgeroute.store.base import MAX_ITEM_BYTES
from edgeroute.store.usage import UsageTotals
from tests.contract.conftest import StoreFactory

DAY = 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _key(key_id: str, created_at: float, tenant: str = "acme") -> ApiKey:
    return ApiKey(
        key_id=key_id,
        key_hash=f"hash-{key_id}",
        name=f"name-{key_id}",
        tenant=tenant,
        created_at=created_at,
    )


def _usage(request_id: str, tenant: str, created_at: float, tokens: int = 10) -> UsageRecord:
    return UsageRecord(
        request_id=request_id,
        key_id="k1",
        tenant=tenant,
        endpoint="chat",
        model="small",
        tier="small",
        prompt_tokens=tokens,
        completion_tokens=2 * tokens,
        cost_usd_micros=3 * tokens,
        latency_ms=12.5,
        status=200,
        created_at=created_at,
        cache_hit=tokens % 2 == 0,
        degraded="answered by small below large: big: upstream_error" if tokens % 2 else "",
    )


# -- keys --------------------------------------------------------------------


async def test_keys_put_get_list_revoke(store: Store) -> None:
    limits = KeyLimits(
        rpm=60, tpm=10_000, tokens_per_day=None, budget_usd_micros=5_000_000, max_concurrent=4
    )
    policy = KeyPolicy(scopes=("chat", "embeddings"), pii="mask", guardrail="both")
    second = replace(
        _key("k2", T0 + 5),
        models=("small", "large"),
        limits=limits,
        admin=True,
        priority=3,
        policy=policy,
    )
    first = _key("k1", T0, tenant="globex")
    await store.put_key(second)
    await store.put_key(first)

    assert await store.get_key("k2") == second
    assert await store.get_key("missing") is None
    assert [k.key_id for k in await store.list_keys()] == ["k1", "k2"]

    await store.put_key(replace(second, revoked=True))
    revoked = await store.get_key("k2")
    assert revoked is not None and revoked.revoked
    assert revoked.limits == limits and revoked.models == ("small", "large")
    assert revoked.policy == policy
    assert len(await store.list_keys()) == 2


# -- usage -------------------------------------------------------------------


async def test_usage_by_tenant_time_range_and_all_tenants(store: Store) -> None:
    records = [
        _usage("r1", "acme", T0, tokens=11),  # degraded: both backends keep the reason
        _usage("r2", "globex", T0 + 10),
        _usage("r3", "acme", T0 + 20),
        _usage("r4", "acme", T0 + 30),
        _usage("r5", "globex", T0 + 2 * DAY),  # another day: admin queries span days
        _usage("r6", "acme", T0 + 20),  # same instant as r3: both kept
    ]
    for record in reversed(records):
        await store.record_usage(record)

    acme = await store.query_usage(T0, T0 + 30, tenant="acme")  # end is exclusive
    assert [r.request_id for r in acme] == ["r1", "r3", "r6"]
    assert acme[0] == records[0]

    everyone = await store.query_usage(T0, T0 + 3 * DAY)
    assert [r.request_id for r in everyone] == ["r1", "r2", "r3", "r6", "r4", "r5"]
    assert await store.query_usage(T0 + 10, T0 + 10.5) == [records[1]]  # start inclusive
    assert await store.query_usage(T0 + 31, T0 + DAY) == []
    assert await store.query_usage(T0, T0 + 3 * DAY, tenant="nobody") == []
    assert len(await store.query_usage(0, time.time() + DAY)) == 6


async def test_usage_summed_per_group_in_the_store(store: Store) -> None:
    def line(request_id: str, tenant: str, at: float, **changes: object) -> UsageRecord:
        fields = {"cache_hit": False, **changes}
        return replace(_usage(request_id, tenant, at), **fields)  # type: ignore[arg-type]

    records = [
        line("r1", "acme", T0, cache_hit=True, replica="a", version="v1"),  # 10 in, 20 out
        line("r2#1", "acme", T0 + 1, status=502, model="large", replica="b", version="v2"),
        line("r2", "acme", T0 + 2, model="large", tier="large", replica="a", version="v1"),
        line(
            "r3", "globex", T0 + DAY, status=429, prompt_tokens=0, completion_tokens=0, key_id="k2"
        ),
        line("r4", "acme", T0 + DAY + 5, model=""),  # refused before a model was known
        line("r5", "acme", T0 + 3 * DAY),  # past the window's (exclusive) end
    ]
    for record in records:
        await store.record_usage(record)
    end = T0 + 3 * DAY

    by_model = await store.summarize_usage(T0, end, None, "model")
    assert [(g.group, g.requests, g.failed_attempts) for g in by_model] == [
        ("(none)", 1, 0),
        ("large", 1, 1),  # r2: one request, one failed attempt, not two requests
        ("small", 2, 0),
    ]
    small = by_model[-1]
    assert (small.errors, small.cache_hits) == (1, 1)
    assert (small.prompt_tokens, small.completion_tokens, small.cost_usd_micros) == (10, 20, 60)

    by_day = await store.summarize_usage(T0, end, None, "day")
    assert [(g.group, g.requests) for g in by_day] == [("2026-01-01", 2), ("2026-01-02", 2)]
    by_tenant = await store.summarize_usage(T0, end, None, "tenant")
    assert [(g.group, g.requests, g.errors) for g in by_tenant] == [
        ("acme", 3, 0),
        ("globex", 1, 1),
    ]
    acme = await store.summarize_usage(T0, end, "acme", "tenant")
    assert [(g.group, g.prompt_tokens, g.failed_attempts) for g in acme] == [("acme", 30, 1)]
    # Start inclusive, end exclusive: only r2's failed attempt, whose tokens are not summed.
    assert await store.summarize_usage(T0 + 1, T0 + 2, None, "model") == [
        UsageTotals("large", failed_attempts=1)
    ]
    assert await store.summarize_usage(T0, end, "nobody", "model") == []
    # Replicas and their versions: a canary's failed attempt shows against its version.
    by_version = await store.summarize_usage(T0, end, None, "version")
    assert [(g.group, g.requests, g.failed_attempts) for g in by_version] == [
        ("(none)", 2, 0),
        ("v1", 2, 0),
        ("v2", 0, 1),
    ]
    by_key = await store.summarize_usage(T0, end, None, "key")
    assert [(g.group, g.requests, g.errors, g.failed_attempts) for g in by_key] == [
        ("k1", 3, 0, 1),
        ("k2", 1, 1, 0),
    ]
    by_replica = await store.summarize_usage(T0, end, None, "replica")
    assert [g.as_row("replica")["latency_ms_mean"] for g in by_replica] == [12.5, 12.5, None]


# -- counters ----------------------------------------------------------------


async def test_200_concurrent_adds_admit_exactly_the_limit(store: Store) -> None:
    exp = time.time() + 120
    results = await asyncio.gather(
        *(store.add_to_counter("rpm:k1", 60, 1, 50, exp) for _ in range(200))
    )
    admitted = [r for r in results if r.admitted]
    assert len(admitted) == 50
    assert sorted(r.value for r in admitted) == list(range(1, 51))
    assert all(r.value <= 50 for r in results if not r.admitted)
    assert await store.get_counter("rpm:k1", 60) == 50


async def test_200_adds_from_8_threads_admit_exactly_the_limit(
    store_factory: StoreFactory,
) -> None:
    # Each thread has its own store (connection / client), like separate processes.
    exp = time.time() + 120
    stores = [store_factory() for _ in range(8)]
    admitted: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(store: Store) -> None:
        async def run() -> list[bool]:
            results = await asyncio.gather(
                *(store.add_to_counter("tpm:k1", 0, 1, 50, exp) for _ in range(25))
            )
            return [r.admitted for r in results]

        try:
            barrier.wait()
            outcome = asyncio.run(run())
            with lock:
                admitted.extend(1 for ok in outcome if ok)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(admitted) == 50
    assert await stores[0].get_counter("tpm:k1", 0) == 50


async def test_negative_amounts_give_back_and_limits_hold(store: Store) -> None:
    exp = time.time() + 120
    assert (await store.add_to_counter("tok", 0, 30, 50, exp)).value == 30
    refused = await store.add_to_counter("tok", 0, 30, 50, exp)
    assert not refused.admitted and refused.value == 30
    # Reconciliation: 20 of the 30 reserved tokens were not used.
    given_back = await store.add_to_counter("tok", 0, -20, 50, exp)
    assert given_back.admitted and given_back.value == 10
    assert (await store.add_to_counter("tok", 0, 40, 50, exp)).value == 50
    assert not (await store.add_to_counter("tok", 0, 1, 50, exp)).admitted
    # A give-back is admitted even when the counter is at its limit.
    assert (await store.add_to_counter("tok", 0, -5, 50, exp)).admitted
    assert await store.get_counter("tok", 0) == 45


async def test_counter_edge_cases(store: Store) -> None:
    exp = time.time() + 120
    # More than the whole limit at once is refused, even on a fresh window.
    too_big = await store.add_to_counter("big", 0, 60, 50, exp)
    assert not too_big.admitted and too_big.value == 0
    assert await store.get_counter("big", 0) == 0
    # No limit: always admitted.
    for _ in range(3):
        unlimited = await store.add_to_counter("free", 0, 1000, None, exp)
    assert unlimited.admitted and unlimited.value == 3000
    # Exactly reaching the limit is allowed.
    assert (await store.add_to_counter("exact", 0, 50, 50, exp)).admitted


async def test_counter_windows_and_names_are_independent(store: Store) -> None:
    exp = time.time() + 120
    for window in (0, 60, 120):
        for _ in range(3):
            await store.add_to_counter("rpm:k1", window, 1, 3, exp)
        assert not (await store.add_to_counter("rpm:k1", window, 1, 3, exp)).admitted
    assert (await store.add_to_counter("rpm:k2", 0, 1, 3, exp)).value == 1
    assert await store.get_counter("rpm:k1", 60) == 3
    assert await store.get_counter("rpm:k1", 180) == 0
    assert await store.get_counter("never", 0) == 0


# -- cache -------------------------------------------------------------------


async def test_cache_put_get_overwrite_and_expiry(store: Store) -> None:
    later = time.time() + 60
    assert await store.cache_get("absent") is None
    assert await store.cache_put("k", b'{"answer": 42}', later)
    assert await store.cache_get("k") == b'{"answer": 42}'
    assert await store.cache_put("k", b"newer", later)
    assert await store.cache_get("k") == b"newer"
    # Expired entries are ignored on read even though nothing has deleted them.
    assert await store.cache_put("stale", b"old", time.time() - 5)
    assert await store.cache_get("stale") is None


async def test_cache_compression_round_trip_and_oversize_skip(store: Store) -> None:
    later = time.time() + 60
    medium = b"the same sentence, over and over. " * 600  # ~20 KB, compressed
    assert await store.cache_put("medium", medium, later)
    assert await store.cache_get("medium") == medium
    # 2 MB of text compresses under the 400 KB item limit: stored.
    huge_text = b"".join(b"line %d of a long completion\n" % i for i in range(70_000))
    assert len(huge_text) > 2 * MAX_ITEM_BYTES
    assert await store.cache_put("huge-text", huge_text, later)
    assert await store.cache_get("huge-text") == huge_text
    # Random bytes do not compress: over the limit, skipped.
    noise = os.urandom(MAX_ITEM_BYTES)
    assert not await store.cache_put("noise", noise, later)
    assert await store.cache_get("noise") is None
    # Just under the limit is accepted by the backend itself (DynamoDB checks size).
    fits = os.urandom(MAX_ITEM_BYTES - 128 - len("fits"))
    assert await store.cache_put("fits", fits, later)
    assert await store.cache_get("fits") == fits
    assert not await store.cache_put("fits", fits + b"x", later)


# -- health and jobs ---------------------------------------------------------


async def test_health_and_circuits(store: Store) -> None:
    now = time.time()
    await store.put_health("a", {"ok": True, "p50_ms": 120.5, "errors": [503]}, now + 30)
    await store.put_health("b", {"ok": False}, now + 30)
    await store.open_circuit("b", now + 60)
    await store.open_circuit("c", now + 60)
    await store.put_health("stale", {"ok": True}, now - 1)
    await store.open_circuit("closed", now - 1)

    health = await store.get_health(["a", "b", "c", "stale", "closed", "unknown", "a"])
    assert health["a"] == {"ok": True, "p50_ms": 120.5, "errors": [503]}
    assert health["b"]["ok"] is False
    assert abs(health["b"]["circuit_open_until"] - (now + 60)) < 1e-3
    assert set(health["c"]) == {"circuit_open_until"}
    assert set(health) == {"a", "b", "c"}
    assert await store.get_health([]) == {}
    many = [f"ep{i}" for i in range(120)]  # more than one BatchGetItem's worth
    for ep in many:
        await store.put_health(ep, {"i": ep}, now + 30)
    assert len(await store.get_health(many)) == 120


async def test_jobs_round_trip(store: Store) -> None:
    job = {"status": "running", "input": "s3://bucket/in.jsonl", "done": 3, "total": 10}
    await store.put_job("j1", job)
    assert await store.get_job("j1") == job
    await store.put_job("j1", {**job, "status": "completed", "done": 10}, time.time() + 3600)
    assert (await store.get_job("j1") or {})["status"] == "completed"
    await store.put_job("old", job, time.time() - 1)
    assert await store.get_job("old") is None
    assert await store.get_job("missing") is None


async def test_claim_job_is_exclusive_until_the_lease_runs_out(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    now = time.time()
    job = {"job_id": "j1", "status": "in_progress", "lease_until": now + 60}
    claims = await asyncio.gather(*(store.claim_job("j1", job, now) for _ in range(8)))
    assert claims.count(True) == 1
    assert not await store.claim_job("j1", job, now + 30)  # still leased
    assert await store.claim_job("j1", {**job, "lease_until": now + 200}, now + 61)  # abandoned
    await store.put_job("j1", {"job_id": "j1", "status": "completed", "lease_until": now + 200})
    assert not await store.claim_job("j1", job, now + 1000)  # finished jobs stay finished


async def test_a_job_in_any_active_status_is_taken_over_once_its_lease_runs_out(
    store: Store,
) -> None:
    now = time.time()
    for status in ("validating", "finalizing", "cancelling"):
        job = {"job_id": status, "status": status, "lease_until": now + 60}
        await store.put_job(status, job)
        assert not await store.claim_job(status, job, now)
        assert await store.claim_job(status, job, now + 61)


async def test_listed_jobs_page_newest_first_per_owner(store: Store) -> None:
    from edgeroute.store.batch_records import listing

    for i in range(5):
        row = {"job_id": f"b{i}", "n": i, **listing("team", "batch", f"b{i}", 1000.0 + i)}
        await store.put_job(f"b{i}", row)
    await store.put_job("x", {"job_id": "x", **listing("other", "batch", "x", 2000.0)})
    await store.put_job("y", {"job_id": "y"})  # not listed
    first = await store.list_jobs("team#batch", 2, None)
    assert [r["n"] for r in first] == [4, 3]
    rest = await store.list_jobs("team#batch", 10, str(first[-1]["_listed"]))
    assert [r["n"] for r in rest] == [2, 1, 0]
    assert [r["job_id"] for r in await store.list_jobs("other#batch", 10, None)] == ["x"]
    assert await store.list_jobs("team#file", 10, None) == []
