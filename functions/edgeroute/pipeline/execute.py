"""The execute stage: try the planned targets in order until one answers.

Each target gets its own bounded retries for failures before the first byte, all
under one overall deadline. Each attempt goes to one replica of its target
(``pipeline/replicas``): a retry to another healthy replica while one is left, and a
target with no healthy replica is passed over for the next. A failure another try at the
same replica cannot fix now (a credential, a 429's Retry-After) is not retried there. A
buffered answer comes back whole; a stream is handed back once its first chunk arrived,
and relayed chunk by chunk from there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import anyio

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import (
    EdgerouteError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.observe import tracing
from edgeroute.pipeline import metrics
from edgeroute.pipeline.params import apply_parameter_rules
from edgeroute.pipeline.replicas import ReplicaChoice
from edgeroute.pipeline.results import Buffered, Streamed
from edgeroute.types import Json, Kind, Usage
from edgeroute.upstreams import adapter_for
from edgeroute.upstreams.base import upstream_for
from edgeroute.wire.chunks import estimated_usage, usage_chunk, without_usage
from edgeroute.wire.sse import DONE_EVENT, encode_event

# Called after each failed attempt: (model, attempt number, error).
FailureHook = Callable[[ModelSpec, int, EdgerouteError], Awaitable[None]]


async def _no_hook(model: ModelSpec, attempt: int, error: EdgerouteError) -> None:
    return None


# Called once when a stream ends, however it ends: (usage, status, every chunk received,
# usage chunks included even when the caller did not ask for them).
StreamDone = Callable[[Usage, int, list[Json]], Awaitable[None]]


def _retryable(exc: EdgerouteError) -> bool:
    """Failures before the first byte worth another try, here or on a fallback."""
    if isinstance(exc, UpstreamUnavailable | UpstreamTimeout | UpstreamAuthFailed):
        return True
    return isinstance(exc, UpstreamError) and exc.code in (
        "upstream_error",
        "upstream_truncated",
        "upstream_malformed",
    )


def upstream_payload(payload: Json, model: ModelSpec, stream: bool) -> Json:
    """What ``model`` is sent: the request under its own parameter rules (a fallback may
    clamp tighter than the first target; planning dropped those that would refuse)."""
    out = apply_parameter_rules(model, dict(payload))
    out["model"] = model.wire_name
    if stream:
        # Always ask for usage: the ledger needs it even when the caller did not.
        out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
    return out


def _gave_up(exc: EdgerouteError) -> bool:
    """A replica that failed so is not retried: its credential, or a wait it named."""
    return isinstance(exc, UpstreamAuthFailed | UpstreamThrottled)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _replica_key(replica: ModelSpec) -> str:
    return f"{replica.name}/{replica.replica_label}"


async def _attempts(
    targets: list[ModelSpec], choice: ReplicaChoice, given_up: set[str]
) -> AsyncIterator[tuple[ModelSpec, ModelSpec, int]]:
    """(target, its replica, attempt number) in order: each target's retries (never again
    to a replica in ``given_up``), then the next target. Every attempt handed out before
    the next was asked for failed."""
    attempt = 0
    for model in targets:
        tried: list[ModelSpec] = []
        for retry in range(model.retries + 1):
            replica = choice.pick(model, tried)
            if replica is None:
                break  # no healthy replica: on to the fallbacks
            if retry and _replica_key(replica) in given_up:
                break  # the one left gave up: on to the fallbacks
            attempt += 1
            if retry and any(replica is t for t in tried):  # another replica needs no pause
                await asyncio.sleep(min(0.1 * 2 ** (retry - 1), 1.0))
            yield model, replica, attempt
            tried.append(replica)
    if not attempt:
        raise UpstreamUnavailable(
            f"Every replica of model '{targets[0].name}' is down (circuit open or probe "
            "failing), and no fallback is available. Retry later or call another model.",
            code="circuit_open",
            headers={"Retry-After": "5"},
        )


def _reason(targets: list[ModelSpec], model: ModelSpec, planned: str, failures: list[str]) -> str:
    if model is targets[0]:
        return planned if not failures else f"{planned}; retried after {failures[-1]}"
    return f"fallback to '{model.name}' after {failures[-1]}"


def usage_of_body(prompt_tokens: int, body: Json) -> Usage:
    reported = Usage.from_openai(body.get("usage"))
    return reported if reported is not None else estimated_usage(prompt_tokens, [body])


async def execute_buffered(
    kind: Kind,
    payload: Json,
    targets: list[ModelSpec],
    reason: str,
    prompt_tokens: int,
    on_failure: FailureHook = _no_hook,
    choice: ReplicaChoice | None = None,
) -> Buffered:
    failures: list[str] = []
    given_up: set[str] = set()
    last: EdgerouteError | None = None
    deadline = targets[0].timeouts.total
    choice = choice or ReplicaChoice()
    load = choice.load
    try:
        async with asyncio.timeout(deadline):
            async for target, model, attempt in _attempts(targets, choice, given_up):
                started = load.started(model)
                try:
                    with tracing.span(tracing.UPSTREAM, model=model.name, attempt=attempt):
                        body = await adapter_for(model).send(
                            kind, upstream_payload(payload, model, False), model
                        )
                except EdgerouteError as exc:
                    if not _retryable(exc):
                        raise
                    last = exc
                    failures.append(f"{model.name}: {exc.code}")
                    if _gave_up(exc):
                        given_up.add(_replica_key(model))
                    await on_failure(model, attempt, exc)
                    continue
                finally:
                    load.finished(model)
                load.first_byte(model, started)
                metrics.upstream_answered(model.name, _ms_since(started), streamed=False)
                body["model"] = model.name
                return Buffered(
                    model=model,
                    attempts=attempt,
                    reason=_reason(targets, target, reason, failures),
                    body=body,
                    usage=usage_of_body(prompt_tokens, body),
                )
    except TimeoutError:
        tried = f", after {'; '.join(failures)}" if failures else ""
        raise UpstreamTimeout(
            f"No upstream answered within {deadline} s (model '{targets[0].name}'{tried}). "
            "Retry later.",
            headers={"Retry-After": "5"},
        ) from None
    assert last is not None
    raise last


async def execute_stream(
    kind: Kind,
    payload: Json,
    targets: list[ModelSpec],
    reason: str,
    on_failure: FailureHook = _no_hook,
    choice: ReplicaChoice | None = None,
) -> tuple[Streamed, float]:
    """Open the stream on the first target that sends a first chunk.

    Returns the answer and the loop-time deadline the rest of the stream must meet.
    """
    failures: list[str] = []
    given_up: set[str] = set()
    last: EdgerouteError | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + targets[0].timeouts.total
    choice = choice or ReplicaChoice()
    async for target, model, attempt in _attempts(targets, choice, given_up):
        started = choice.load.started(model)
        chunks = choice.load.held(
            model, adapter_for(model).stream(kind, upstream_payload(payload, model, True), model)
        )
        try:
            with tracing.span(tracing.UPSTREAM, model=model.name, attempt=attempt, stream=True):
                async with asyncio.timeout_at(deadline):
                    first = await anext(chunks)
        except StopAsyncIteration:
            last = UpstreamError(
                f"{upstream_for(model)} sent an empty stream.", code="upstream_truncated"
            )
        except TimeoutError:
            await chunks.aclose()
            last = UpstreamTimeout(
                f"{upstream_for(model)} sent nothing within "
                f"{targets[0].timeouts.total} s. Retry later.",
                headers={"Retry-After": "5"},
            )
        except EdgerouteError as exc:
            if not _retryable(exc):
                raise
            last = exc
        else:
            choice.load.first_byte(model, started)
            metrics.upstream_answered(model.name, _ms_since(started), streamed=True)
            answer = Streamed(
                model=model,
                attempts=attempt,
                reason=_reason(targets, target, reason, failures),
                first=first,
                rest=chunks,
            )
            return answer, deadline
        failures.append(f"{model.name}: {last.code}")
        if _gave_up(last):
            given_up.add(_replica_key(model))
        await on_failure(model, attempt, last)
        if loop.time() >= deadline:
            break
    assert last is not None
    raise last


async def relay(
    answer: Streamed,
    *,
    request_id: str,
    want_usage: bool,
    prompt_tokens: int,
    deadline: float,
    on_done: StreamDone,
) -> AsyncGenerator[bytes, None]:
    """Pass chunks through as they arrive; end with usage and [DONE], or an error event.

    A failure's detail goes to the server log under ``request_id``; the caller's event
    holds only its body. ``on_done`` runs exactly once, shielded from cancellation:
    before ``[DONE]`` when the stream completes, or at the end when it fails or the
    client hangs up (which also closes the upstream request), so usage is never lost.
    """
    model, rest = answer.model, answer.rest
    assert rest is not None
    loop = asyncio.get_running_loop()
    usage: Usage | None = None
    relayed: list[Json] = []
    status = 200
    settled = False
    chunk: Json | None = answer.first
    try:
        while chunk is not None:
            chunk["model"] = model.name
            usage = Usage.from_openai(chunk.get("usage")) or usage
            relayed.append(chunk)
            shown = chunk if want_usage else without_usage(chunk)
            if shown is not None:
                yield encode_event(shown)
                if loop.time() > deadline:
                    raise UpstreamTimeout(
                        f"Model '{model.name}' streamed past its total timeout of "
                        f"{model.timeouts.total} s; the response is incomplete.",
                    )
            chunk = await anext(rest, None)
        if usage is None:
            usage = estimated_usage(prompt_tokens, relayed)
            if want_usage:
                yield encode_event(usage_chunk(answer.first, usage.to_openai(), model.name))
        # Account before [DONE]: a client that reads its usage right after sees it.
        settled = True
        with anyio.CancelScope(shield=True):
            await on_done(usage, status, relayed)
        yield DONE_EVENT
    except EdgerouteError as exc:
        status = exc.status_code
        exc.log_detail(request_id)
        yield encode_event(exc.body())
    except BaseException:
        status = 499  # the client went away mid-stream
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await rest.aclose()
            if not settled:
                if usage is None:
                    usage = estimated_usage(prompt_tokens, relayed)
                await on_done(usage, status, relayed)
