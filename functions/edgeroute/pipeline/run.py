"""The request path, top to bottom: route → admit + cache → execute → account.

Authentication happens before this (the API layer's dependency); the stages here
take an authenticated ``Call`` and end in an OpenAI-shaped answer. The HTTP app,
the Lambda handlers and the CLI all come through ``run``.

The quota update and the cache look-up run concurrently: the one store round trip
the caller waits on. Usage, quota reconciliation and cache fills happen after the
answer is on its way (buffered: a background task; streamed: when the stream ends),
and so is the request's audit record (``pipeline/audit``); bodies a key asks to keep are
archived after the answer is sent, a stream's after ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import replace

import anyio

from edgeroute.config.registry import ModelSpec
from edgeroute.edge.classifier import Classification, classify
from edgeroute.errors import (
    EdgerouteError,
    InvalidRequest,
    StoreUnavailable,
)
from edgeroute.observe import logs, tracing
from edgeroute.pipeline.admit import Admission, admit, budget_left_usd
from edgeroute.pipeline.audit import AuditRecord
from edgeroute.pipeline.autoroute import VIRTUAL, Limits, decide
from edgeroute.pipeline.cache import (
    Entry,
    assemble,
    cache_key,
    cacheable_stream,
    is_deterministic,
    replay_chunks,
)
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.execute import execute_buffered, execute_stream, relay
from edgeroute.pipeline.failover import degraded_reason
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.guardrail import screen_input, screen_output
from edgeroute.pipeline.instrument import classify_measured
from edgeroute.pipeline.pii import protect, restore
from edgeroute.pipeline.replicas import replica_choice
from edgeroute.pipeline.resolve import (
    Plan,
    plan,
    plan_from_decision,
    prompt_reservation,
    skip_down,
    within_cost_ceiling,
)
from edgeroute.pipeline.results import Buffered, Streamed
from edgeroute.pipeline.settle import (
    account_failure,
    failure_hook,
    settle,
    settle_buffered,
)
from edgeroute.types import Json, Usage
from edgeroute.wire.sse import DONE_EVENT, encode_event

__all__ = [  # the request path as the API, batch runner and CLI call it
    "Buffered",
    "Call",
    "Streamed",
    "account_failure",
    "explain",
    "max_cost",
    "route",
    "run",
    "settle",
    "settle_buffered",
]

log = logging.getLogger("edgeroute.pipeline.run")


async def _replay(events: list[Json]) -> AsyncGenerator[bytes, None]:
    for event in events:
        yield encode_event(event)
    yield DONE_EVENT


async def _then_keep(
    gw: Gateway,
    call: Call,
    events: AsyncGenerator[bytes, None],
    kept: list[tuple[AuditRecord, Json]],
) -> AsyncIterator[bytes]:
    """A stream's bytes, then its bodies to the audit archive: after [DONE] is sent, and
    however the stream ends (the inner stream settles first, filling ``kept``)."""
    try:
        async for event in events:
            yield event
    finally:
        with anyio.CancelScope(shield=True):
            await events.aclose()
            for record, answer in kept:
                await gw.audit.keep(call, record, answer)


async def _hit_outcome(gw: Gateway, call: Call, decided: Plan, entry: Entry) -> Buffered | Streamed:
    model = decided.targets[0]
    reason = call.route_reason = "served from cache"
    if not call.stream:
        body = dict(entry.completion)
        body["model"] = model.name
        usage = Usage.from_openai(body.get("usage")) or Usage()
        return Buffered(model=model, attempts=0, reason=reason, body=body, usage=usage)
    record = await settle(gw, call, model, Usage(), 200, 0, answered=True)
    events = _replay(replay_chunks(entry, model.name, call.want_usage))
    kept = [(record, {**entry.completion, "model": model.name})]
    return Streamed(
        model=model, attempts=0, reason=reason, events=_then_keep(gw, call, events, kept)
    )


# A plain non-negative decimal, as "0", "0.01", ".5" or "1e-05" (no sign, no "_", no
# "inf" or "nan", which float() would take).
_DOLLARS = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def max_cost(value: str | None) -> float | None:
    """The ``x-edgeroute-max-cost`` header: the most the request may cost, in US dollars;
    0 lets through only what costs nothing. None when the header is absent."""
    if value is None:
        return None
    text = value.strip()
    cost = float(text) if _DOLLARS.fullmatch(text) else math.inf
    if not math.isfinite(cost):
        raise InvalidRequest(
            f"Invalid 'x-edgeroute-max-cost' header {value[:40]!r}: send the most this "
            "request may cost, in US dollars, as a number of 0 or more, e.g. 0.01 "
            "(0 lets through only requests that cost nothing).",
            param="x-edgeroute-max-cost",
        )
    return cost


def _start_classifying(call: Call) -> asyncio.Future[Classification]:
    """Classify the call on a worker thread, once; the result is awaited where needed."""
    if call.classifying is None:
        call.classifying = asyncio.ensure_future(
            asyncio.to_thread(classify_measured, classify, call.payload)
        )
    return call.classifying


async def route(gw: Gateway, call: Call) -> Plan:
    """Decide where the call goes: a named model as asked, a virtual name by the router
    (which waits for the classification it starts on a worker thread)."""
    name = call.payload.get("model")
    virtual = isinstance(name, str) and name in VIRTUAL
    if virtual:
        _start_classifying(call)
    registry = gw.registry  # read once: a reload swaps in a whole new one
    models, tenant = registry.models(), call.principal.tenant
    now = gw.clock()
    if not virtual:
        decided = plan(registry, call.principal, call.kind, call.payload)
        if call.max_cost_usd is not None:
            within_cost_ceiling(decided, call.kind, call.payload, call.max_cost_usd)
        return skip_down(decided, await gw.health.snapshot(models, tenant), now)
    assert call.classifying is not None and isinstance(name, str)
    classification, health, budget_left = await asyncio.gather(
        call.classifying,
        gw.health.snapshot(models, tenant),
        budget_left_usd(gw.store, call.principal, now),
    )
    reserve = max(classification.prompt_tokens, prompt_reservation(call.kind, call.payload))
    decision = decide(
        name=name,
        kind=call.kind,
        payload=call.payload,
        c=classification,
        registry=registry,
        policy=gw.policy,
        principal=call.principal,
        health=health,
        limits=Limits(max_cost_usd=call.max_cost_usd, budget_left_usd=budget_left),
        now=now,
        reserve_tokens=reserve,
    )
    return plan_from_decision(decision, call.payload, classification.prompt_tokens, reserve)


async def run(gw: Gateway, call: Call) -> Buffered | Streamed:
    """Route, admit, look up the cache, execute. Streams settle their own accounts when
    they end; the caller settles buffered outcomes with ``settle_buffered``. The key's
    PII mode applies between routing and admission (pipeline/pii.py)."""
    decided = await route(gw, call)
    logs.bind(
        model=decided.targets[0].name, tier=decided.targets[0].tier, route_reason=decided.reason
    )
    masker = await protect(call, decided.targets, gw.settings)
    return restore(await _admit_and_execute(gw, call, decided), masker)


async def _admit_and_execute(gw: Gateway, call: Call, decided: Plan) -> Buffered | Streamed:
    model = decided.targets[0]
    call.route_reason = decided.reason
    key = None
    if call.cache_mode == "force" or (
        call.cache_mode == "auto" and is_deterministic(call.kind, call.payload)
    ):
        key = cache_key(call.principal.tenant, model, call.kind, call.payload)
        call.cache_status = "miss"
    try:
        with tracing.span(tracing.STORE, cache=call.cache_status):
            admission, entry = await asyncio.gather(
                # A background Response was admitted when it was accepted (pipeline/background).
                _admitted(call.admission)
                if call.admission is not None
                else admit(
                    gw.store, call.principal, call.kind, model, call.payload, decided.reserve_tokens
                ),
                gw.cache.get(key) if key else asyncio.sleep(0, None),
            )
    except EdgerouteError:
        raise
    except Exception as exc:
        log.exception("store failed admitting request %s", call.request_id)
        raise StoreUnavailable() from exc
    call.admission = admission
    if gw.settings.classify == "always":
        # Named models are classified for the headers and the ledger only once admitted,
        # beside the upstream call: a refused request (400, 404, 403, 402, 429) never pays.
        _start_classifying(call)
    await _settled_if_refused(gw, call, model, Usage(), 0, screen_input(gw, call))
    if entry is not None:
        call.cache_status = "hit"
        call.degraded = degraded_reason(decided, model, [])
        hit = await _hit_outcome(gw, call, decided, entry)
        if isinstance(hit, Buffered):
            await _settled_if_refused(
                gw, call, model, hit.usage, 0, screen_output(gw, call, hit.body)
            )
        return hit
    try:
        if call.stream:
            return await _stream(gw, call, decided, key)
        answer = await execute_buffered(
            call.kind,
            call.payload,
            decided.targets,
            decided.reason,
            decided.prompt_tokens,
            failure_hook(gw, call),
            await replica_choice(gw, call),
        )
    except EdgerouteError as exc:
        await settle(gw, call, model, Usage(), exc.status_code, 0)
        raise
    except BaseException:
        with anyio.CancelScope(shield=True):  # give back the reservation, however it ended
            await settle(gw, call, model, Usage(), 500, 0)
        raise
    call.route_reason = answer.reason
    call.degraded = degraded_reason(decided, answer.model, call.failed_attempts)
    screened = screen_output(gw, call, answer.body)
    await _settled_if_refused(gw, call, answer.model, answer.usage, answer.attempts, screened)
    # Only an answer from the model the key was made for (any replica) may fill the cache.
    own = key if answer.model.name == model.name else None
    fill = (own, gw.cache.put_local(own, Entry(completion=answer.body))) if own else None
    return replace(answer, cache_fill=fill)


async def _admitted(admission: Admission) -> Admission:
    return admission


async def _settled_if_refused(
    gw: Gateway,
    call: Call,
    model: ModelSpec,
    usage: Usage,
    attempts: int,
    check: Awaitable[None],
) -> None:
    """Await a guardrail check; if it refuses (or fails), settle the admitted call before
    the error goes on, with the tokens an answer already used."""
    try:
        await check
    except BaseException as exc:
        status = exc.status_code if isinstance(exc, EdgerouteError) else 500
        with anyio.CancelScope(shield=True):
            await settle(gw, call, model, usage, status, attempts)
        raise


async def _stream(gw: Gateway, call: Call, decided: Plan, key: str | None) -> Streamed:
    answer, deadline = await execute_stream(
        call.kind,
        call.payload,
        decided.targets,
        decided.reason,
        failure_hook(gw, call),
        await replica_choice(gw, call),
    )

    own = key if answer.model.name == decided.targets[0].name else None
    call.route_reason = answer.reason
    call.degraded = degraded_reason(decided, answer.model, call.failed_attempts)
    kept: list[tuple[AuditRecord, Json]] = []

    async def done(usage: Usage, status: int, chunks: list[Json]) -> None:
        # Never let accounting or the cache cut a complete answer: log and carry on.
        try:
            record = await settle(
                gw, call, answer.model, usage, status, answer.attempts, answered=bool(chunks)
            )
            if record.bodies_kept:
                kept.append((record, assemble(chunks)))
            if own and status == 200 and chunks and cacheable_stream(chunks):
                completion = assemble(chunks)
                completion.setdefault("usage", usage.to_openai())
                await gw.cache.put(own, Entry(completion=completion, chunks=chunks))
        except Exception:
            log.exception("settling stream %s failed", call.request_id)

    events = relay(
        answer,
        request_id=call.request_id,
        want_usage=call.want_usage,
        prompt_tokens=decided.prompt_tokens,
        deadline=deadline,
        on_done=done,
    )
    return replace(answer, events=_then_keep(gw, call, events, kept))


async def explain(gw: Gateway, call: Call) -> Json:
    """What ``run`` would decide for this call, and why, without calling any model."""
    classifying = _start_classifying(call)
    decided = await route(gw, call)
    classification = await classifying
    first = decided.targets[0]
    candidates = decided.candidates or [
        {
            "model": m.name,
            "tier": m.tier,
            "kept": True,
            "why": "named in the request" if i == 0 else "declared fallback",
        }
        for i, m in enumerate(decided.targets)
    ]
    return {
        "object": "route",
        "model": first.name,
        "tier": first.tier,
        "reason": decided.reason,
        "min_tier": decided.min_tier,
        "rule": decided.rule,
        "targets": [m.name for m in decided.targets],
        "degraded": degraded_reason(decided, first, []),
        "classification": classification.as_json(),
        "candidates": [c if isinstance(c, dict) else c.as_json() for c in candidates],
    }
