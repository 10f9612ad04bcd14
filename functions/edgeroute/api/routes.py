"""The OpenAI-compatible routes. Each is a few lines: validate, hand to the pipeline."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from edgeroute import pipeline
from edgeroute.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from edgeroute.auth import bearer_token
from edgeroute.errors import EdgerouteError, NotFound
from edgeroute.gateway import Gateway
from edgeroute.registry import ModelSpec
from edgeroute.store.base import ApiKey
from edgeroute.upstreams import Kind

router = APIRouter()
_STARTED = int(time.time())


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def authenticated(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ApiKey:
    request.state.request_id = "req_" + os.urandom(12).hex()
    secret = bearer_token(authorization, x_api_key)
    return await gateway(request).authenticator.authenticate(secret)


Principal = Annotated[ApiKey, Depends(authenticated)]


async def _serve(request: Request, principal: ApiKey, kind: Kind, body: Any) -> Response:
    gw = gateway(request)
    call = pipeline.Call(
        request_id=request.state.request_id,
        principal=principal,
        kind=kind,
        payload=body.model_dump(exclude_unset=True),
    )
    try:
        result = await pipeline.run(gw, call)
    except EdgerouteError as exc:
        exc.headers.setdefault("x-request-id", call.request_id)
        await pipeline.account_failure(gw, call, exc)
        raise
    headers = result.headers(call.request_id)
    if isinstance(result, pipeline.Streamed):
        assert result.events is not None
        headers["cache-control"] = "no-cache"
        headers["x-accel-buffering"] = "no"
        return StreamingResponse(result.events, media_type="text/event-stream", headers=headers)
    return JSONResponse(
        result.body,
        headers=headers,
        background=BackgroundTask(pipeline.account_buffered, gw, call, result),
    )


@router.post("/v1/chat/completions")
async def chat_completions(
    request: Request, body: ChatCompletionRequest, principal: Principal
) -> Response:
    return await _serve(request, principal, Kind.CHAT, body)


@router.post("/v1/completions")
async def completions(request: Request, body: CompletionRequest, principal: Principal) -> Response:
    return await _serve(request, principal, Kind.COMPLETIONS, body)


@router.post("/v1/embeddings")
async def embeddings(request: Request, body: EmbeddingRequest, principal: Principal) -> Response:
    return await _serve(request, principal, Kind.EMBEDDINGS, body)


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


@router.get("/v1/models")
async def list_models(request: Request, principal: Principal) -> dict[str, Any]:
    models = [m for m in gateway(request).registry.models() if principal.allows(m.name)]
    return {"object": "list", "data": [_model_card(m) for m in models]}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: str, principal: Principal) -> dict[str, Any]:
    model = gateway(request).registry.get(model_id)
    if model is None or not principal.allows(model.name):
        raise NotFound(
            f"The model '{model_id}' does not exist. GET /v1/models lists the models "
            "this key can use.",
            param="model",
        )
    return _model_card(model)


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    gw = gateway(request)
    return {"status": "ok", "models": len(gw.registry), "store": gw.settings.store}
