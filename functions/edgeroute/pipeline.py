"""The request path, top to bottom: route → admit + cache → execute → account.

Authentication happens before this (the API layer's dependency); the stages here
take an authenticated ``Call`` and end in an OpenAI-shaped answer. The HTTP app,
the Lambda handlers and the CLI all come through ``run``.

The quota update and the cache look-up run concurrently: the one store round trip
the caller waits on. Usage, quota reconciliation and cache fills happen after the
answer is on its way (buffered: a background task; streamed: when the stream ends).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from edgeroute.account import usage_record, write_usage
from edgeroute.admit import Admission, admit, reconcile
from edgeroute.cache import CacheMode, Entry, assemble, cache_key, is_deterministic, replay_chunks
from edgeroute.errors import EdgerouteError
from edgeroute.execute import (
    encode_event,
    execute_buffered,
    execute_stream,
    relay,
)
from edgeroute.gateway import Gateway
from edgeroute.registry import ModelSpec
from edgeroute.route import Plan, plan
from edgeroute.store.base import ApiKey
from edgeroute.upstreams import Json, Kind, Usage


@dataclass
class Call:
    """One authenticated request on its way through the pipeline."""

    request_id: str
    principal: ApiKey
    kind: Kind
    payload: Json
    cache_mode: CacheMode = "auto"
    started: float = field(default_factory=time.perf_counter)
    # Filled in as the call moves along, for headers and accounting.
    admission: Admission | None = None
    cache_status: str = "bypass"

    @property
    def stream(self) -> bool:
        return bool(self.payload.get("stream"))

    @property
    def want_usage(self) -> bool:
        return bool((self.payload.get("stream_options") or {}).get("include_usage"))


@dataclass
class Outcome:
    model: ModelSpec
    attempts: int
    reason: str

    def headers(self, call: Call) -> dict[str, str]:
        headers = {
            "x-request-id": call.request_id,
            "x-edgeroute-model": self.model.name,
            "x-edgeroute-tier": self.model.tier,
            "x-edgeroute-attempts": str(self.attempts),
            "x-edgeroute-route-reason": self.reason,
            "x-edgeroute-cache": call.cache_status,
        }
        if call.admission is not None:
            headers.update(call.admission.headers())
        return headers


@dataclass
class Buffered(Outcome):
    body: Json = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cache_fill: tuple[str, bytes] | None = None  # (key, entry) for the shared cache


@dataclass
class Streamed(Outcome):
    events: AsyncIterator[bytes] | None = None


def _cost_micros(model: ModelSpec, usage: Usage) -> int:
    return round(model.price.cost_usd(usage.prompt_tokens, usage.completion_tokens) * 1_000_000)


async def _settle(
    gw: Gateway, call: Call, model: ModelSpec | None, usage: Usage, status: int, attempts: int
) -> None:
    """Write the usage record and give back unused reservations."""
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
    )
    writes = [write_usage(gw.store, record)]
    if call.admission is not None:
        cost = _cost_micros(model, billed) if model else 0
        writes.append(reconcile(gw.store, call.admission, billed.total_tokens, cost))
    await asyncio.gather(*writes)


async def _replay(events: list[Json]) -> AsyncIterator[bytes]:
    for event in events:
        yield encode_event(event)
    yield b"data: [DONE]\n\n"


async def _hit_outcome(gw: Gateway, call: Call, decided: Plan, entry: Entry) -> Buffered | Streamed:
    model = decided.targets[0]
    reason = "served from cache"
    if not call.stream:
        body = dict(entry.completion)
        body["model"] = model.name
        usage = Usage.from_openai(body.get("usage")) or Usage()
        return Buffered(model=model, attempts=0, reason=reason, body=body, usage=usage)
    await _settle(gw, call, model, Usage(), 200, 0)
    events = replay_chunks(entry, model.name, call.want_usage)
    return Streamed(model=model, attempts=0, reason=reason, events=_replay(events))


async def run(gw: Gateway, call: Call) -> Buffered | Streamed:
    """Route, admit, look up the cache, execute. Streams settle their own accounts when
    they end; the caller settles buffered outcomes with ``settle_buffered``."""
    decided = plan(gw.registry, call.principal, call.kind, call.payload)
    model = decided.targets[0]
    key = None
    if call.cache_mode == "force" or (
        call.cache_mode == "auto" and is_deterministic(call.kind, call.payload)
    ):
        key = cache_key(call.principal.tenant, model.name, call.kind, call.payload)
        call.cache_status = "miss"
    admission, entry = await asyncio.gather(
        admit(gw.store, call.principal, model, call.payload, decided.prompt_tokens),
        gw.cache.get(key) if key else asyncio.sleep(0, None),
    )
    call.admission = admission
    if entry is not None:
        call.cache_status = "hit"
        return await _hit_outcome(gw, call, decided, entry)
    try:
        if call.stream:
            return await _stream(gw, call, decided, key)
        answer = await execute_buffered(
            call.kind, call.payload, decided.targets, decided.reason, decided.prompt_tokens
        )
    except EdgerouteError as exc:
        await _settle(gw, call, model, Usage(), exc.status_code, 0)
        raise
    fill = (key, gw.cache.put_local(key, Entry(completion=answer.body))) if key else None
    return Buffered(
        model=answer.model,
        attempts=answer.attempts,
        reason=answer.reason,
        body=answer.body,
        usage=answer.usage,
        cache_fill=fill,
    )


async def _stream(gw: Gateway, call: Call, decided: Plan, key: str | None) -> Streamed:
    answer, deadline = await execute_stream(
        call.kind, call.payload, decided.targets, decided.reason
    )

    async def done(usage: Usage, status: int, chunks: list[Json]) -> None:
        await _settle(gw, call, answer.model, usage, status, answer.attempts)
        if key and status == 200 and chunks:
            completion = assemble(chunks)
            completion.setdefault("usage", usage.to_openai())
            await gw.cache.put(key, Entry(completion=completion, chunks=chunks))

    events = relay(
        answer,
        want_usage=call.want_usage,
        prompt_tokens=decided.prompt_tokens,
        deadline=deadline,
        on_done=done,
    )
    return Streamed(
        model=answer.model, attempts=answer.attempts, reason=answer.reason, events=events
    )


async def settle_buffered(gw: Gateway, call: Call, result: Buffered) -> None:
    """After a buffered answer is sent: usage, reconciliation, cache fill."""
    await _settle(gw, call, result.model, result.usage, 200, result.attempts)
    if result.cache_fill is not None:
        await gw.cache.put_shared(*result.cache_fill)


async def account_failure(gw: Gateway, call: Call, error: EdgerouteError) -> None:
    """Requests refused before execution are in the ledger too, so error rates add up."""
    if call.admission is not None:
        return  # run() already settled it
    name = call.payload.get("model")
    model = gw.registry.get(name) if isinstance(name, str) else None
    record = usage_record(
        request_id=call.request_id,
        principal=call.principal,
        kind=call.kind,
        model=model,
        usage=Usage(),
        status=error.status_code,
        started=call.started,
        attempts=0,
    )
    await write_usage(gw.store, record)
