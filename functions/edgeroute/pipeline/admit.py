"""The admit stage: per-key quotas and budget, each one conditional atomic update.

Limits are requests per minute, tokens per minute, tokens per day and a monthly
budget (integer micro-dollars). Every limit is one ``add_to_counter`` on a counter
keyed by key and window, so it holds across any number of gateway instances.

The per-minute limits slide: the minute just closed still counts in proportion to how
much of it lies within the last 60 s, so 50 requests a minute cannot become 100 in a
few seconds around a window's edge (a fixed window let that through). A closed
window's count is read once per instance and kept: nothing adds to it any more, and the
give-backs that may still land only lower it.
Token limits reserve the prompt plus the most the call may generate, and the budget
the cost of that (both from ``edgeroute.pricing``, as the router predicts them) up
front; ``reconcile`` gives back what the call did not use.

``max_concurrent`` caps a key's requests in flight with a lease per request in the
store (``acquire_lease``), taken with the other limits and given back when the call
settles (``release``); a lease ends by itself after the model's total timeout plus a
margin, so an instance that dies mid-call frees its slots within minutes.

A hot key's counters could be sharded: N counters per window, each with limit/N,
picked at random per request. That trades exactness near the limit for N times the
write throughput of one item (DynamoDB allows ~1,000 writes/s per partition); at the
rates one gateway key sees, one counter per window is exact and enough.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import BudgetExceeded, ConcurrencyLimited, RateLimited, StoreUnavailable
from edgeroute.pricing import estimate
from edgeroute.store.base import ApiKey, CounterResult, Store
from edgeroute.types import Json, Kind

log = logging.getLogger("edgeroute.pipeline.admit")

_MINUTE = 60
_DAY = 86_400
# A lease outlives the model's total timeout by this much: a call can take no longer
# (streams included), so only a holder that died keeps its slot that long.
LEASE_MARGIN_S = 60


def _month_window(now: float) -> tuple[int, int]:
    day = datetime.fromtimestamp(now, UTC)
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    days = calendar.monthrange(day.year, day.month)[1]
    return int(start.timestamp()), int(start.timestamp()) + days * _DAY


@dataclass(frozen=True)
class Limit:
    """One limit for this request: which counter, its window, what it reserves."""

    kind: str  # requests | tokens | tokens_per_day | budget
    limit: int
    amount: int
    window_start: int
    window_end: int
    carried: int = 0  # the previous window's share still within the sliding minute

    def counter(self, key_id: str) -> str:
        return f"{key_id}#{self.kind}"

    @property
    def room(self) -> int:
        """What this window's counter may reach."""
        return max(self.limit - self.carried, 0)

    def reset_after(self, now: float) -> int:
        return max(1, int(self.window_end - now + 0.999))


@dataclass
class Admission:
    """What was reserved, and what the rate-limit headers should say."""

    key_id: str
    limits: list[Limit] = field(default_factory=list)
    values: dict[str, int] = field(default_factory=dict)
    reserved_tokens: int = 0
    reserved_micros: int = 0
    now: float = field(default_factory=time.time)
    lease: Lease | None = None  # the key's concurrency slot, until ``release``

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.limits:
            if item.kind not in ("requests", "tokens"):
                continue
            used = self.values.get(item.kind, 0) + item.carried
            out[f"x-ratelimit-limit-{item.kind}"] = str(item.limit)
            out[f"x-ratelimit-remaining-{item.kind}"] = str(max(item.limit - used, 0))
            out[f"x-ratelimit-reset-{item.kind}"] = f"{item.reset_after(self.now)}s"
        return out


@dataclass(frozen=True)
class Lease:
    """One of the key's ``max_concurrent`` slots, held by one call until it settles."""

    limit: int
    expires_at: float
    holder: str = field(default_factory=lambda: os.urandom(9).hex())

    @staticmethod
    def name(key_id: str) -> str:
        return f"{key_id}#concurrent"


def limits_for(key: ApiKey, reserved_tokens: int, reserved_micros: int, now: float) -> list[Limit]:
    minute = int(now // _MINUTE) * _MINUTE
    day = int(now // _DAY) * _DAY
    out: list[Limit] = []
    q = key.limits
    if q.rpm is not None:
        out.append(Limit("requests", q.rpm, 1, minute, minute + _MINUTE))
    if q.tpm is not None:
        out.append(Limit("tokens", q.tpm, reserved_tokens, minute, minute + _MINUTE))
    if q.tokens_per_day is not None:
        out.append(Limit("tokens_per_day", q.tokens_per_day, reserved_tokens, day, day + _DAY))
    if q.budget_usd_micros is not None:
        start, end = _month_window(now)
        out.append(Limit("budget", q.budget_usd_micros, reserved_micros, start, end))
    return out


_SLIDING = ("requests", "tokens")
_CLOSED_WINDOWS: dict[tuple[str, int], int] = {}  # (counter, window start) -> final count
_CLOSED_KEEP = 4096


async def _closed_count(store: Store, counter: str, start: int) -> int:
    known = _CLOSED_WINDOWS.get((counter, start))
    if known is None:
        known = await store.get_counter(counter, start)
        if len(_CLOSED_WINDOWS) >= _CLOSED_KEEP:
            _CLOSED_WINDOWS.clear()  # a minute later none of them matters
        _CLOSED_WINDOWS[(counter, start)] = known
    return known


async def slide(store: Store, key: ApiKey, limits: list[Limit], now: float) -> list[Limit]:
    """The per-minute limits with the previous minute's weighted count carried in."""

    async def carried(item: Limit) -> Limit:
        if item.kind not in _SLIDING:
            return item
        previous = await _closed_count(store, item.counter(key.key_id), item.window_start - _MINUTE)
        share = 1.0 - (now - item.window_start) / _MINUTE
        return replace(item, carried=math.ceil(previous * share))  # up: never over

    return list(await asyncio.gather(*(carried(item) for item in limits)))


_WHAT = {
    "requests": "requests per minute",
    "tokens": "tokens per minute",
    "tokens_per_day": "tokens per day",
    "budget": "monthly budget (micro-dollars)",
}


def _refusal(key: ApiKey, item: Limit, result: CounterResult, admission: Admission) -> RateLimited:
    wait = item.reset_after(admission.now)
    headers = {"Retry-After": str(wait), **admission.headers()}
    if item.kind == "budget":
        spent = result.value / 1_000_000
        return BudgetExceeded(
            f"API key {key.key_id} has used ${spent:.4f} of its monthly budget of "
            f"${item.limit / 1_000_000:.2f}; this request could cost up to "
            f"${item.amount / 1_000_000:.4f}. Lower 'max_tokens', choose a cheaper model, "
            f"or ask an admin to raise the budget (resets in {wait} s).",
            headers=headers,
        )
    detail = f" (this request reserves {item.amount})" if item.kind != "requests" else ""
    used = result.value + item.carried
    window = " in the last 60 s" if item.kind in _SLIDING else ""
    return RateLimited(
        f"Rate limit reached for API key {key.key_id}: {item.limit} {_WHAT[item.kind]}, "
        f"{used} used{window}{detail}. Retry after {wait} s, or lower 'max_tokens'.",
        param="max_tokens" if item.kind != "requests" else None,
        headers=headers,
    )


async def admit(
    store: Store, key: ApiKey, kind: Kind, model: ModelSpec, payload: Json, prompt_tokens: int
) -> Admission:
    """Reserve this request against every limit the key has, all at once, or refuse
    with 429 (giving back whatever was already reserved)."""
    now = time.time()
    most = estimate(kind, model, payload, prompt_tokens)
    reserved, micros = most.reserved_tokens, most.cost_micros
    admission = Admission(key.key_id, reserved_tokens=reserved, reserved_micros=micros, now=now)
    admission.limits = limits_for(key, reserved, micros, now)
    if key.limits.max_concurrent is not None:
        until = now + model.timeouts.total + LEASE_MARGIN_S
        admission.lease = Lease(key.limits.max_concurrent, until)
    return await _reserve(store, key, admission)


async def count_request(store: Store, key: ApiKey) -> Admission:
    """Count a request that generates nothing (/v1/classify, /v1/route, /v1/models,
    /v1/usage) against the key's requests per minute, or refuse with 429: every route
    a key can call is inside its limits."""
    now = time.time()
    admission = Admission(key.key_id, now=now)
    admission.limits = [i for i in limits_for(key, 0, 0, now) if i.kind == "requests"]
    return await _reserve(store, key, admission)


async def _reserve(store: Store, key: ApiKey, admission: Admission) -> Admission:
    """Reserve against every limit in ``admission`` (and take its lease) at once, or give
    back and refuse."""
    now = admission.now
    if not admission.limits and admission.lease is None:
        return admission
    try:
        admission.limits = await slide(store, key, admission.limits, now)
    except Exception as exc:
        log.warning("store failed reading key %s's last minute", key.key_id, exc_info=exc)
        raise StoreUnavailable() from exc
    lease = admission.lease
    updates = [
        store.add_to_counter(
            item.counter(key.key_id),
            item.window_start,
            item.amount,
            item.room,
            item.window_end + _MINUTE,
        )
        for item in admission.limits
    ]
    if lease is not None:
        name = Lease.name(key.key_id)
        updates.append(store.acquire_lease(name, lease.holder, lease.limit, lease.expires_at, now))
    outcomes = await asyncio.gather(*updates, return_exceptions=True)
    slot = outcomes.pop() if lease is not None else None
    failed = [r for r in (*outcomes, slot) if isinstance(r, BaseException)]
    reserved = [
        (item, r)
        for item, r in zip(admission.limits, outcomes, strict=True)
        if isinstance(r, CounterResult) and r.admitted
    ]
    if failed:
        log.warning("store failed counting key %s's limits", key.key_id, exc_info=failed[0])
        # Give back what the updates that did succeed reserved, then refuse cleanly.
        await _give_back(store, key, reserved)
        await release(store, admission)
        raise StoreUnavailable() from failed[0]
    results = [r for r in outcomes if isinstance(r, CounterResult)]
    admission.values = {
        item.kind: r.value for item, r in zip(admission.limits, results, strict=True)
    }
    refused = [
        (item, r) for item, r in zip(admission.limits, results, strict=True) if not r.admitted
    ]
    slot_refused = isinstance(slot, CounterResult) and not slot.admitted
    if slot_refused:
        admission.lease = None  # never taken: nothing to give back
    if not refused and not slot_refused:
        return admission
    await _give_back(store, key, reserved)
    await release(store, admission)
    if refused:
        item, result = refused[0]
        raise _refusal(key, item, result, admission)
    assert lease is not None
    raise ConcurrencyLimited(
        f"API key {key.key_id} already has {lease.limit} requests in flight, its limit "
        f"of concurrent requests (max_concurrent). Retry after one of them finishes, or "
        "ask an admin to raise the key's --max-concurrent.",
        headers={"Retry-After": "1", **admission.headers()},
    )


async def release(store: Store, admission: Admission) -> None:
    """Give the call's concurrency slot back, once; a store failure is logged, and the
    lease's expiry frees the slot instead."""
    lease, admission.lease = admission.lease, None
    if lease is None:
        return
    try:
        await store.release_lease(Lease.name(admission.key_id), lease.holder)
    except Exception:
        log.exception("store failed releasing a concurrency slot of key %s", admission.key_id)


async def _give_back(
    store: Store, key: ApiKey, reserved: list[tuple[Limit, CounterResult]]
) -> None:
    """Undo reservations of a refused request (negative amounts are always admitted)."""
    await asyncio.gather(
        *(
            store.add_to_counter(
                item.counter(key.key_id),
                item.window_start,
                -item.amount,
                None,
                item.window_end + _MINUTE,
            )
            for item, _ in reserved
        ),
        return_exceptions=True,
    )


async def budget_left_usd(store: Store, key: ApiKey, now: float) -> float | None:
    """What remains of the key's monthly budget (None when it has none)."""
    limit = key.limits.budget_usd_micros
    if limit is None:
        return None
    start, _ = _month_window(now)
    spent = await store.get_counter(f"{key.key_id}#budget", start)
    return max(limit - spent, 0) / 1_000_000


async def reconcile(store: Store, admission: Admission, used_tokens: int, used_micros: int) -> None:
    """Give back the part of the reservation the call did not use (or add an overrun)."""
    updates = []
    for item in admission.limits:
        if item.kind in ("tokens", "tokens_per_day"):
            delta = used_tokens - admission.reserved_tokens
        elif item.kind == "budget":
            delta = used_micros - admission.reserved_micros
        else:
            continue
        if delta:
            updates.append(
                store.add_to_counter(
                    item.counter(admission.key_id),
                    item.window_start,
                    delta,
                    None,
                    item.window_end + _MINUTE,
                )
            )
    if updates:
        await asyncio.gather(*updates)
