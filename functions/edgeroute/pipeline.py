"""The request path, top to bottom: resolve → check → route → execute → account.

Authentication happens before this (the API layer's dependency); the stages
here take an authenticated ``Call`` and end in an OpenAI-shaped answer. The HTTP
app, the Lambda handlers and the CLI all come through here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio

from edgeroute.account import usage_record, write_usage
from edgeroute.errors import (
    EdgerouteError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.gateway import Gateway
from edgeroute.params import apply_parameter_rules
from edgeroute.registry import Capability, ModelSpec
from edgeroute.store.base import ApiKey
from edgeroute.tokens import estimate_prompt_tokens, estimate_tokens
from edgeroute.upstreams import Json, Kind, Usage, adapter_for

_KIND_CAPABILITY = {
    Kind.CHAT: Capability.CHAT,
    Kind.COMPLETIONS: Capability.COMPLETIONS,
    Kind.EMBEDDINGS: Capability.EMBEDDINGS,
}
_KIND_ROUTE = {
    Kind.CHAT: "/v1/chat/completions",
    Kind.COMPLETIONS: "/v1/completions",
    Kind.EMBEDDINGS: "/v1/embeddings",
}


@dataclass
class Call:
    """One authenticated request on its way through the pipeline."""

    request_id: str
    principal: ApiKey
    kind: Kind
    payload: Json
    started: float = field(default_factory=time.perf_counter)

    @property
    def stream(self) -> bool:
        return bool(self.payload.get("stream"))


@dataclass
class Plan:
    """The ordered targets to try and why the first was chosen."""

    targets: list[ModelSpec]
    reason: str
    prompt_tokens: int


@dataclass
class Outcome:
    model: ModelSpec
    attempts: int
    reason: str

    def headers(self, request_id: str) -> dict[str, str]:
        return {
            "x-request-id": request_id,
            "x-edgeroute-model": self.model.name,
            "x-edgeroute-tier": self.model.tier,
            "x-edgeroute-attempts": str(self.attempts),
            "x-edgeroute-route-reason": self.reason,
        }


@dataclass
class Buffered(Outcome):
    body: Json = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)


@dataclass
class Streamed(Outcome):
    events: AsyncIterator[bytes] | None = None


# -- resolve and check -------------------------------------------------------------


def _required_capabilities(kind: Kind, payload: Json) -> set[Capability]:
    needed = {_KIND_CAPABILITY[kind]}
    if payload.get("tools"):
        needed.add(Capability.TOOLS)
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        needed.add(Capability.JSON)
    for message in payload.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "image_url" for p in content
        ):
            needed.add(Capability.VISION)
            break
    return needed


def _prompt_tokens(kind: Kind, payload: Json) -> int:
    if kind is Kind.CHAT:
        return estimate_prompt_tokens(payload.get("messages") or [])
    source = payload.get("prompt") if kind is Kind.COMPLETIONS else payload.get("input")
    if isinstance(source, str):
        return estimate_tokens(source)
    if isinstance(source, list):
        return sum(estimate_tokens(s) if isinstance(s, str) else 1 for s in source)
    return 0


def _check_context(model: ModelSpec, kind: Kind, payload: Json, prompt_tokens: int) -> None:
    window = model.context_window
    if prompt_tokens > window:
        param = {Kind.CHAT: "messages", Kind.COMPLETIONS: "prompt"}.get(kind, "input")
        raise PayloadTooLarge(
            f"The '{param}' are about {prompt_tokens} tokens, more than model "
            f"'{model.name}''s context window of {window} tokens. Shorten '{param}' "
            "or choose a model with a larger context_window (GET /v1/models).",
            param=param,
            code="context_length_exceeded",
        )
    if kind is Kind.EMBEDDINGS:
        return
    wanted = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if wanted and prompt_tokens + wanted > window:
        name = "max_completion_tokens" if payload.get("max_completion_tokens") else "max_tokens"
        raise PayloadTooLarge(
            f"The prompt (about {prompt_tokens} tokens) plus '{name}' ({wanted}) exceeds "
            f"model '{model.name}''s context window of {window} tokens. Lower '{name}' to "
            f"at most {max(window - prompt_tokens, 1)}.",
            param=name,
            code="context_length_exceeded",
        )


def plan(gw: Gateway, call: Call) -> Plan:
    """Resolve the named model, check the request against it, and list its fallbacks."""
    name = call.payload.get("model")
    model = gw.registry.get(name) if isinstance(name, str) else None
    if model is None:
        raise NotFound(
            f"The model '{name}' does not exist. GET /v1/models lists the models this key can use.",
            param="model",
        )
    if not call.principal.allows(model.name):
        raise PermissionDenied(
            f"This API key may not use model '{model.name}'. Allowed: "
            f"{', '.join(call.principal.models)}. Ask an admin to extend the key.",
            param="model",
        )
    needed = _required_capabilities(call.kind, call.payload)
    missing = sorted(c.value for c in needed if not model.supports(c))
    if missing:
        able = [
            m.name
            for m in gw.registry.models()
            if all(m.supports(c) for c in needed) and call.principal.allows(m.name)
        ]
        hint = f"Models that can: {', '.join(able)}." if able else "No model here can."
        raise InvalidRequest(
            f"Model '{model.name}' does not support {', '.join(missing)}, which "
            f"{_KIND_ROUTE[call.kind]} with this body needs. {hint}",
            param="model",
            code="model_capability_missing",
        )
    apply_parameter_rules(model, call.payload)
    prompt_tokens = _prompt_tokens(call.kind, call.payload)
    _check_context(model, call.kind, call.payload, prompt_tokens)
    targets = [model]
    for fallback_name in model.fallbacks:
        fallback = gw.registry.get(fallback_name)
        if (
            fallback is not None
            and fallback not in targets
            and call.principal.allows(fallback.name)
            and all(fallback.supports(c) for c in needed)
            and prompt_tokens <= fallback.context_window
        ):
            targets.append(fallback)
    return Plan(targets=targets, reason="model named in the request", prompt_tokens=prompt_tokens)


# -- execute -----------------------------------------------------------------------

_RETRYABLE = (UpstreamUnavailable, UpstreamTimeout)


def _retryable(exc: EdgerouteError) -> bool:
    """Failures before the first byte worth another try, here or on a fallback."""
    if isinstance(exc, _RETRYABLE):
        return True
    return isinstance(exc, UpstreamError) and exc.code in (
        "upstream_error",
        "upstream_truncated",
        "upstream_malformed",
    )


def _upstream_payload(call: Call, model: ModelSpec) -> Json:
    payload = dict(call.payload)
    payload["model"] = model.wire_name
    if call.stream:
        # Always ask for usage: the ledger needs it even when the caller did not.
        payload["stream_options"] = {**(payload.get("stream_options") or {}), "include_usage": True}
    return payload


async def _attempts(call: Call, targets: list[ModelSpec]) -> AsyncIterator[tuple[ModelSpec, int]]:
    """Yield (target, attempt number) in order: each target's retries, then the next."""
    attempt = 0
    for model in targets:
        for retry in range(model.retries + 1):
            attempt += 1
            if retry:
                await asyncio.sleep(min(0.1 * 2 ** (retry - 1), 1.0))
            yield model, attempt


def _fallback_reason(plan: Plan, model: ModelSpec, failures: list[str]) -> str:
    if model is plan.targets[0]:
        return plan.reason if not failures else f"{plan.reason}; retried after {failures[-1]}"
    return f"fallback to '{model.name}' after {failures[-1]}"


async def execute_buffered(gw: Gateway, call: Call, plan: Plan) -> Buffered:
    failures: list[str] = []
    last: EdgerouteError | None = None
    deadline = plan.targets[0].timeouts.total
    try:
        async with asyncio.timeout(deadline):
            async for model, attempt in _attempts(call, plan.targets):
                try:
                    body = await adapter_for(model).send(
                        call.kind, _upstream_payload(call, model), model
                    )
                except EdgerouteError as exc:
                    if not _retryable(exc):
                        raise
                    last = exc
                    failures.append(f"{model.name}: {exc.code}")
                    continue
                body["model"] = model.name
                return Buffered(
                    model=model,
                    attempts=attempt,
                    reason=_fallback_reason(plan, model, failures),
                    body=body,
                    usage=usage_of_body(plan, body),
                )
    except TimeoutError:
        raise UpstreamTimeout(
            f"No upstream answered within {deadline} s (model '{plan.targets[0].name}'"
            f"{', after ' + '; '.join(failures) if failures else ''}). Retry later.",
            headers={"Retry-After": "5"},
        ) from None
    assert last is not None
    raise last


def usage_of_body(plan: Plan, body: Json) -> Usage:
    reported = Usage.from_openai(body.get("usage"))
    if reported is not None:
        return reported
    text = ""
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            text += str(choice.get("text") or message.get("content") or "")
    return Usage(plan.prompt_tokens, estimate_tokens(text), estimated=True)


def _encode(event: Json) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _chunk_text(chunk: Json) -> str:
    out = []
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict):
            delta = choice.get("delta") or {}
            out.append(str(choice.get("text") or delta.get("content") or ""))
    return "".join(out)


async def execute_stream(gw: Gateway, call: Call, plan: Plan) -> Streamed:
    """Open the stream on the first target that accepts it; the rest is passed through."""
    failures: list[str] = []
    last: EdgerouteError | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + plan.targets[0].timeouts.total
    async for model, attempt in _attempts(call, plan.targets):
        chunks = adapter_for(model).stream(call.kind, _upstream_payload(call, model), model)
        try:
            async with asyncio.timeout_at(deadline):
                first = await anext(chunks)
        except StopAsyncIteration:
            last = UpstreamError(
                f"Upstream for model '{model.name}' sent an empty stream.",
                code="upstream_truncated",
            )
        except TimeoutError:
            await chunks.aclose()  # type: ignore[attr-defined]
            last = UpstreamTimeout(
                f"Upstream for model '{model.name}' sent nothing within "
                f"{plan.targets[0].timeouts.total} s. Retry later.",
                headers={"Retry-After": "5"},
            )
        except EdgerouteError as exc:
            if not _retryable(exc):
                raise
            last = exc
        else:
            reason = _fallback_reason(plan, model, failures)
            events = _relay(gw, call, plan, model, attempt, first, chunks, deadline)
            return Streamed(model=model, attempts=attempt, reason=reason, events=events)
        failures.append(f"{model.name}: {last.code}")
        if loop.time() >= deadline:
            break
    assert last is not None
    raise last


async def _relay(
    gw: Gateway,
    call: Call,
    plan: Plan,
    model: ModelSpec,
    attempts: int,
    first: Json,
    chunks: AsyncIterator[Json],
    deadline: float,
) -> AsyncIterator[bytes]:
    """Pass chunks through as they arrive; end with usage, [DONE], or an error event."""
    want_usage = bool((call.payload.get("stream_options") or {}).get("include_usage"))
    loop = asyncio.get_running_loop()
    usage: Usage | None = None
    text: list[str] = []
    status = 200
    chunk: Json | None = first
    try:
        while chunk is not None:
            chunk["model"] = model.name
            reported = Usage.from_openai(chunk.get("usage"))
            if reported is not None:
                usage = reported
                if not want_usage:
                    if not chunk.get("choices"):
                        chunk = await anext(chunks, None)
                        continue
                    chunk.pop("usage", None)
            text.append(_chunk_text(chunk))
            yield _encode(chunk)
            if loop.time() > deadline:
                raise UpstreamTimeout(
                    f"Model '{model.name}' streamed past its total timeout of "
                    f"{model.timeouts.total} s; the response is incomplete.",
                )
            chunk = await anext(chunks, None)
        if usage is None:
            usage = Usage(plan.prompt_tokens, estimate_tokens("".join(text)), estimated=True)
            if want_usage:
                yield _encode(
                    {
                        "id": first.get("id"),
                        "object": first.get("object"),
                        "created": first.get("created"),
                        "model": model.name,
                        "choices": [],
                        "usage": usage.to_openai(),
                    }
                )
        yield b"data: [DONE]\n\n"
    except EdgerouteError as exc:
        status = exc.status_code
        yield _encode(exc.body())
    except BaseException:
        status = 499  # the client went away: cancelled mid-stream
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await chunks.aclose()  # type: ignore[attr-defined]
            if usage is None:
                usage = Usage(plan.prompt_tokens, estimate_tokens("".join(text)), estimated=True)
            record = usage_record(
                request_id=call.request_id,
                principal=call.principal,
                kind=call.kind,
                model=model,
                usage=usage,
                status=status,
                started=call.started,
                attempts=attempts,
            )
            await write_usage(gw.store, record)


async def account_buffered(gw: Gateway, call: Call, result: Buffered) -> None:
    record = usage_record(
        request_id=call.request_id,
        principal=call.principal,
        kind=call.kind,
        model=result.model,
        usage=result.usage,
        status=200,
        started=call.started,
        attempts=result.attempts,
    )
    await write_usage(gw.store, record)


async def account_failure(gw: Gateway, call: Call, error: EdgerouteError) -> None:
    """Failed requests are in the ledger too, with no tokens, so error rates add up."""
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


async def run(gw: Gateway, call: Call) -> Buffered | Streamed:
    """Plan and execute one call. Streams account for themselves when they end;
    the caller accounts buffered results once the response is on its way."""
    decided = plan(gw, call)
    if call.stream:
        return await execute_stream(gw, call, decided)
    return await execute_buffered(gw, call, decided)
