"""Settlement: how every admitted call ends, once, however it ended. The usage record
goes to the ledger, unused reservations and the key's concurrency slot go back, the
audit record is emitted; a failed attempt before a fallback is a ledger line of its own
and counts against its target's circuit; a request refused before admission is in the
ledger too, so error rates add up."""

from __future__ import annotations

import asyncio
import logging

import anyio

from edgeroute.config.registry import ModelSpec
from edgeroute.edge.classifier import Classification
from edgeroute.errors import EdgerouteError, PaymentRequired, RateLimited
from edgeroute.observe import logs
from edgeroute.pipeline import metrics
from edgeroute.pipeline.account import classified, usage_record
from edgeroute.pipeline.admit import reconcile, release
from edgeroute.pipeline.audit import AuditRecord
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.execute import FailureHook
from edgeroute.pipeline.failover import attempt_failed
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.results import Buffered
from edgeroute.store.base import UsageRecord, attempt_id
from edgeroute.types import Usage

log = logging.getLogger("edgeroute.pipeline.settle")


async def settle(
    gw: Gateway,
    call: Call,
    model: ModelSpec | None,
    usage: Usage,
    status: int,
    attempts: int,
    *,
    answered: bool = False,
) -> AuditRecord:
    """Write the usage record, give back unused reservations and the key's concurrency
    slot, and emit the audit record (returned, for ``AuditTrail.keep`` to archive with an
    ``answered`` call's bodies once they are sent). Every admitted call ends here, once,
    however it ended; the slot goes back even when the rest fails or the caller's task is
    being cancelled."""
    try:
        return await _account(gw, call, model, usage, status, attempts, answered=answered)
    finally:
        if call.admission is not None:
            with anyio.CancelScope(shield=True):
                await release(gw.store, call.admission)


async def _account(
    gw: Gateway,
    call: Call,
    model: ModelSpec | None,
    usage: Usage,
    status: int,
    attempts: int,
    *,
    answered: bool,
) -> AuditRecord:
    hit = call.cache_status == "hit"
    billed = Usage() if hit else usage  # a hit cost no upstream tokens
    record = usage_record(
        request_id=call.request_id,
        principal=call.principal,
        kind=call.kind,
        model=model,
        usage=billed,
        status=status,
        started=call.started,
        attempts=attempts,
        cache_hit=hit,
        degraded=call.degraded,
        asked=asked_model(call),
        route_reason=call.route_reason,
        payload=call.payload,
    )
    metrics.record_request(record, call.cache_status)
    logs.bind(model=record.model, tier=record.tier, route_reason=call.route_reason)
    audited = gw.audit.settled(call, record, answered=answered)
    # The ledger line waits for its classification (named models: computed after the
    # answer). A stream settles before its end: under `edgeroute serve`'s lifespan its
    # line is written in a task of its own, so `[DONE]` does not wait for it. A buffered
    # answer already settles after it is sent, in its request's background task.
    line = _write_classified(gw, call, record)
    writes = [gw.after_answer.run(line) if call.stream else line]
    if call.admission is not None:
        writes.append(
            reconcile(gw.store, call.admission, billed.total_tokens, record.cost_usd_micros)
        )
    await asyncio.gather(*writes)
    return audited


async def _write_classified(gw: Gateway, call: Call, record: UsageRecord) -> None:
    """The ledger line, with the classification: the one routing or the headers started,
    or for an answered named-model request one computed now, after its answer (or none,
    when that is shed under load)."""
    await gw.ledger.write(classified(record, await _classification(gw, call, record.status)))


async def _classification(gw: Gateway, call: Call, status: int) -> Classification | None:
    if call.classifying is not None:
        if call.classifying.cancelled():
            return None
        try:
            return await call.classifying
        except Exception:  # logged where the headers read it; the ledger goes without
            return None
    if status == 200 and gw.settings.classify == "background":
        return await gw.deferred.submit(call.payload)
    return None


def failure_record(
    call: Call, model: ModelSpec | None, error: EdgerouteError, attempts: int, request_id: str
) -> UsageRecord:
    """A ledger line for a failed attempt or refused request: no tokens, its status."""
    return usage_record(
        request_id=request_id,
        principal=call.principal,
        kind=call.kind,
        model=model,
        usage=Usage(),
        status=error.status_code,
        started=call.started,
        attempts=attempts,
        asked=asked_model(call),
        route_reason=call.route_reason,
        payload=call.payload,
    )


def asked_model(call: Call) -> str:
    """The model name the request gave, for the ledger ('' when it gave none)."""
    name = call.payload.get("model")
    return name if isinstance(name, str) else ""


def failure_hook(gw: Gateway, call: Call) -> FailureHook:
    """After a failed attempt: count it against the target's circuit (by its cause and
    the caller's tenant), and put the attempt in the ledger and the log."""

    async def on_failure(model: ModelSpec, attempt: int, error: EdgerouteError) -> None:
        log.warning(
            "request %s attempt %d on %s failed: %s (%s)",
            call.request_id,
            attempt,
            model.name,
            error.code,
            error.detail or error.message,
        )
        record = failure_record(call, model, error, attempt, attempt_id(call.request_id, attempt))
        metrics.upstream_error(model.name)
        attempt_failed(model, error, call.failed_attempts)
        try:  # best effort: a store hiccup here must not stop the fallbacks
            opened, _ = await asyncio.gather(
                gw.health.record_failure(model, gw.policy.circuit, error, call.principal.tenant),
                gw.ledger.write(record),
            )
            if opened:
                metrics.circuit_opened(model.name)
        except Exception:
            log.exception("could not record failed attempt %s", record.request_id)

    return on_failure


async def settle_buffered(gw: Gateway, call: Call, result: Buffered) -> None:
    """After a buffered answer is sent: usage, reconciliation, the audit record and
    bodies, cache fill."""
    try:
        record = await settle(
            gw, call, result.model, result.usage, 200, result.attempts, answered=True
        )
        await gw.audit.keep(call, record, result.body)
        if result.cache_fill is not None:
            await gw.cache.put_shared(*result.cache_fill)
    except Exception:  # the answer is already sent; keep the process serving
        log.exception("settling request %s failed", call.request_id)


async def account_failure(gw: Gateway, call: Call, error: EdgerouteError) -> None:
    """Requests refused before execution are in the ledger too, so error rates add up."""
    if call.admission is not None:
        return  # run() already settled it
    name = call.payload.get("model")
    model = gw.registry.get(name) if isinstance(name, str) else None
    record = failure_record(call, model, error, 0, call.request_id)
    metrics.record_request(record, call.cache_status)
    if isinstance(error, RateLimited | PaymentRequired):
        metrics.quota_refused(error.code or "rate_limit_exceeded")
    gw.audit.settled(call, record, answered=False)
    await gw.ledger.write(record)
