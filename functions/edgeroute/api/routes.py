"""The OpenAI-compatible routes. Each is a few lines: validate, hand to the pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from edgeroute.api import usage as usage_report
from edgeroute.api.openapi import STREAMING_OK, UPSTREAM, error_responses
from edgeroute.api.responses import AnyTextJSONResponse
from edgeroute.config.registry import ModelSpec
from edgeroute.edge.classifier import classify
from edgeroute.errors import EdgerouteError, InvalidRequest, NotFound, PermissionDenied
from edgeroute.pipeline import run as pipeline
from edgeroute.pipeline.admit import count_request
from edgeroute.pipeline.authenticate import bearer_token
from edgeroute.pipeline.cache import cache_mode
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.moderate import moderate
from edgeroute.pipeline.scopes import acts_as_admin, require, scope_for_path
from edgeroute.store.base import ApiKey
from edgeroute.store.usage import GroupBy, grand_total
from edgeroute.types import Json, Kind
from edgeroute.wire.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModerationRequest,
    RequestBody,
)


async def single_query_values(request: Request) -> None:
    """Each query parameter at most once: FastAPI would silently keep one of the values
    (and a proxy in front may have read another)."""
    if not request.scope["query_string"]:
        return
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen:
            raise InvalidRequest(
                f"The query parameter '{name}' is given more than once. Give it once.",
                param=name,
                code="repeated_parameter",
            )
        seen.add(name)


router = APIRouter(dependencies=[Depends(single_query_values)])
_STARTED = int(time.time())


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    gw.check_config()  # a clock comparison; a due look at the files runs in the background
    return gw


async def authenticated(request: Request) -> ApiKey:
    """The caller's key or token, allowed by its scopes to call this route: the one
    place a request's credential and scopes are checked. The address and the principal
    go in the request's state for the audit record (the request id is already there:
    the audit middleware's)."""
    gw = gateway(request)
    state = request.state
    state.client_address = address = client_address(request, gw.settings.trusted_proxies)
    # Headers read directly: FastAPI's Header() parameters cost ~0.1 ms per request.
    headers = request.headers
    secret = bearer_token(headers.get("authorization"), headers.get("x-api-key"))
    state.principal = await gw.authenticator.authenticate(secret, address)
    principal: ApiKey = state.principal
    path = request.scope["route"].path  # as declared, so the message echoes no caller text
    require(principal, scope_for_path(path), f"{request.method} {path}")
    return principal


def client_address(request: Request, trusted_proxies: int) -> str | None:
    """The caller's address: the connection's (Mangum fills it from API Gateway's
    requestContext), or, behind ``trusted_proxies`` proxies that each append to
    X-Forwarded-For, the entry they vouch for. Entries further left are the client's
    own claims and are never trusted."""
    if trusted_proxies > 0:
        forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",")]
        forwarded = [p for p in forwarded if p]
        return forwarded[-trusted_proxies] if len(forwarded) >= trusted_proxies else None
    return request.client.host if request.client else None


Principal = Annotated[ApiKey, Depends(authenticated)]


async def counted(request: Request, principal: Principal) -> ApiKey:
    """An authenticated key whose request also counts against its requests per minute:
    for the routes that generate nothing (the pipeline admits the others itself)."""
    await count_request(gateway(request).store, principal)
    return principal


Counted = Annotated[ApiKey, Depends(counted)]


def _new_call(
    request: Request,
    principal: ApiKey,
    kind: Kind,
    body: RequestBody,
    max_cost_usd: float | None = None,
) -> pipeline.Call:
    """The call for a validated request body, under the request's id; kept in its state
    so the audit middleware knows whether the pipeline audited it."""
    request.state.call = call = pipeline.Call(
        request_id=request.state.request_id,
        principal=principal,
        kind=kind,
        payload=body.payload(),
        max_cost_usd=max_cost_usd,
        client_address=request.state.client_address,
    )
    return call


@dataclass(frozen=True)
class AnswerShape:
    """How a route that speaks another API words the pipeline's chat answer: the body,
    and the stream (the pipeline's SSE bytes in, the route's out)."""

    body: Callable[[Json], Json]
    events: Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


async def serve(
    request: Request,
    principal: ApiKey,
    kind: Kind,
    body: RequestBody,
    shape: AnswerShape | None = None,
) -> Response:
    """Run a validated request through the pipeline and answer it, in OpenAI's shape
    unless ``shape`` says otherwise."""
    gw = gateway(request)
    call = _new_call(request, principal, kind, body)
    try:
        call.cache_mode = cache_mode(request.headers.get("x-edgeroute-cache"))
        call.max_cost_usd = pipeline.max_cost(request.headers.get("x-edgeroute-max-cost"))
        result = await pipeline.run(gw, call)
    except EdgerouteError as exc:
        await pipeline.account_failure(gw, call, exc)
        raise
    try:
        headers = await result.headers(call)
        answer: Json = {}  # a buffered answer's body, worded before anything is sent
        if isinstance(result, pipeline.Buffered):
            answer = result.body if shape is None else shape.body(result.body)
    except BaseException:  # hung up before the answer went out: settle it all the same
        if isinstance(result, pipeline.Buffered):
            with anyio.CancelScope(shield=True):
                await pipeline.settle_buffered(gw, call, result)
        raise
    if isinstance(result, pipeline.Streamed):
        assert result.events is not None
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        events = result.events if shape is None else shape.events(result.events)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    return AnyTextJSONResponse(
        answer,
        headers=headers,
        background=BackgroundTask(pipeline.settle_buffered, gw, call, result),
    )


@router.post(Kind.CHAT.path, responses={**STREAMING_OK, **error_responses(*UPSTREAM)})
async def chat_completions(
    request: Request, body: ChatCompletionRequest, principal: Principal
) -> Response:
    return await serve(request, principal, Kind.CHAT, body)


@router.post(Kind.COMPLETIONS.path, responses={**STREAMING_OK, **error_responses(*UPSTREAM)})
async def completions(request: Request, body: CompletionRequest, principal: Principal) -> Response:
    return await serve(request, principal, Kind.COMPLETIONS, body)


@router.post("/v1/route", responses=error_responses(402, 404))
async def explain_route(
    request: Request, body: ChatCompletionRequest, principal: Counted
) -> dict[str, Any]:
    """The routing decision for a chat request, explained; no model is called."""
    max_cost_usd = pipeline.max_cost(request.headers.get("x-edgeroute-max-cost"))
    call = _new_call(request, principal, Kind.CHAT, body, max_cost_usd)
    return await pipeline.explain(gateway(request), call)


@router.post("/v1/classify", responses=error_responses())
async def classify_request(body: ChatCompletionRequest, principal: Counted) -> dict[str, Any]:
    """The edge classifier's view of a chat request; no model is called."""
    result = await asyncio.to_thread(classify, body.payload())
    return {"object": "classification", **result.as_json()}


@router.post(Kind.MODERATIONS.path, responses=error_responses(402, 404))
async def moderations(
    request: Request, body: ModerationRequest, principal: Principal
) -> dict[str, Any]:
    call = _new_call(request, principal, Kind.MODERATIONS, body)
    try:
        call.max_cost_usd = pipeline.max_cost(request.headers.get("x-edgeroute-max-cost"))
        return await moderate(gateway(request), call)
    except EdgerouteError as exc:
        await pipeline.account_failure(gateway(request), call, exc)
        raise


@router.post(Kind.EMBEDDINGS.path, responses=error_responses(*UPSTREAM))
async def embeddings(request: Request, body: EmbeddingRequest, principal: Principal) -> Response:
    return await serve(request, principal, Kind.EMBEDDINGS, body)


def _model_card(model: ModelSpec) -> dict[str, Any]:
    return {
        "id": model.name,
        "object": "model",
        "created": _STARTED,
        "owned_by": "edgeroute",
        "aliases": list(model.aliases),
        "tier": model.tier,
        "protocol": model.protocol.value,
        "capabilities": sorted(c.value for c in model.capabilities),
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "pricing": {
            "input_per_mtok_usd": model.price.input_per_mtok,
            "output_per_mtok_usd": model.price.output_per_mtok,
        },
        "fallbacks": list(model.fallbacks),
    }


@router.get("/v1/models", responses=error_responses())
async def list_models(request: Request, principal: Counted) -> dict[str, Any]:
    models = [m for m in gateway(request).registry.models() if principal.allows(m.name)]
    return {"object": "list", "data": [_model_card(m) for m in models]}


@router.get("/v1/models/{model_id:path}", responses=error_responses(404))
async def retrieve_model(request: Request, model_id: str, principal: Counted) -> dict[str, Any]:
    model = gateway(request).registry.get(model_id)
    if model is None or not principal.allows(model.name):
        raise NotFound(
            f"The model '{model_id}' does not exist. GET /v1/models lists the models "
            "this key can use.",
            param="model",
        )
    return _model_card(model)


@router.get("/v1/usage", responses=error_responses())
async def usage(
    request: Request,
    principal: Counted,
    start: str | None = None,
    end: str | None = None,
    group_by: GroupBy = "model",
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=usage_report.MAX_PAGE)] = 100,
    after: str | None = None,
) -> dict[str, Any]:
    """The caller's usage between two dates, one page of groups at a time (``limit``,
    then ``after`` the last one); an admin key may ask for any tenant or all."""
    admin = acts_as_admin(principal)
    if tenant is not None and tenant != principal.tenant and not admin:
        raise PermissionDenied(
            "Only admin keys (with the 'admin' scope, if scoped) may read another tenant's "
            "usage. Leave out 'tenant'.",
            param="tenant",
            code="admin_only",
        )
    now = datetime.now(UTC)
    first, last = usage_report.default_window(now)
    since = usage_report.parse_when(start, "start", first)
    until = usage_report.end_of(end, usage_report.parse_when(end, "end", last))
    if until <= since:
        raise InvalidRequest(
            f"'end' ({until.isoformat()}) must be after 'start' ({since.isoformat()}).",
            param="end",
        )
    scope = tenant if tenant is not None else (None if admin else principal.tenant)
    groups = await gateway(request).store.summarize_usage(
        since.timestamp(), until.timestamp(), scope, group_by
    )
    shown, more = usage_report.page(groups, limit, after)
    total = grand_total(groups)
    return {
        "object": "usage",
        "start": since.isoformat(),
        "end": until.isoformat(),
        "tenant": scope or "all",
        "group_by": group_by,
        "data": [g.as_row(group_by) for g in shown],
        "has_more": more,
        "last_id": shown[-1].group if shown else None,
        "total": total.as_row("model") if total else None,
    }


@router.get("/healthz", responses=error_responses())
async def healthz(request: Request) -> dict[str, Any]:
    gw = gateway(request)
    memory = request.app.state.memory.report()
    status = "overloaded" if memory["overloaded"] else "ok"
    return {
        "status": status,
        "models": len(gw.registry),
        "store": gw.settings.store,
        "memory": memory,
    }
