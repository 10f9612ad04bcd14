"""OpenAI's Responses API routes. Each is a few lines: validate, hand to
``pipeline/responses`` (foreground) or ``pipeline/background`` (``background: true``).

The background workers belong to the app: started with it (taking over whatever jobs
the store holds), stopped with it, or created on first use when the app runs without
its lifespan (in-process tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from edgeroute.api.openapi import STREAMING_OK, UPSTREAM, error_responses
from edgeroute.api.responses import AnyTextJSONResponse
from edgeroute.api.routes import Counted, Principal, gateway, single_query_values
from edgeroute.errors import EdgerouteError, InvalidRequest
from edgeroute.pipeline import background, responses
from edgeroute.pipeline import run as pipeline
from edgeroute.pipeline.background import BackgroundResponses
from edgeroute.pipeline.cache import cache_mode
from edgeroute.types import Kind
from edgeroute.wire.responses import ResponsesRequest


def _workers(app: FastAPI | Any) -> BackgroundResponses:
    state = app.state
    workers: BackgroundResponses | None = getattr(state, "background_responses", None)
    if workers is None:
        state.background_responses = workers = BackgroundResponses(state.gateway)
        if not workers.remote:  # a worker function sweeps for itself
            workers.start()
    return workers


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    workers = _workers(app)
    yield
    await workers.stop()


router = APIRouter(dependencies=[Depends(single_query_values)], lifespan=_lifespan)
_ID = "/v1/responses/{response_id}"


@router.post("/v1/responses", responses={**STREAMING_OK, **error_responses(*UPSTREAM)})
async def create_response(
    request: Request, body: ResponsesRequest, principal: Principal
) -> Response:
    gw = gateway(request)
    payload = body.payload()
    earlier = await responses.history(gw, principal.tenant, payload.get("previous_response_id"))
    prepared = responses.Prepared(payload, earlier)
    request.state.call = call = pipeline.Call(
        request_id=request.state.request_id,
        principal=principal,
        kind=Kind.CHAT,
        payload=prepared.chat,
        client_address=request.state.client_address,
    )
    try:
        call.cache_mode = cache_mode(request.headers.get("x-edgeroute-cache"))
        call.max_cost_usd = pipeline.max_cost(request.headers.get("x-edgeroute-max-cost"))
        if payload.get("background"):
            queued = await _workers(request.app).accept(call, prepared)
            headers = {"x-request-id": call.request_id}
            if call.admission is not None:
                headers |= call.admission.headers()
            return AnyTextJSONResponse(queued, headers=headers)
        result = await pipeline.run(gw, call)
    except EdgerouteError as exc:
        await pipeline.account_failure(gw, call, exc)
        if isinstance(exc, InvalidRequest):
            raise responses.as_responses_error(exc) from None
        raise
    try:
        headers = await result.headers(call)
        if isinstance(result, pipeline.Streamed):
            assert result.events is not None
            events = responses.events(gw, call, prepared, result.events)
            headers |= {"cache-control": "no-cache", "x-accel-buffering": "no"}
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        answer = await responses.answer(gw, call, prepared, result)
    except BaseException:  # hung up, or the store failed: settle it all the same
        if isinstance(result, pipeline.Buffered):
            with anyio.CancelScope(shield=True):
                await pipeline.settle_buffered(gw, call, result)
        raise
    settling = BackgroundTask(pipeline.settle_buffered, gw, call, result)
    return AnyTextJSONResponse(answer, headers=headers, background=settling)


@router.get(_ID, responses=error_responses(404))
async def retrieve_response(request: Request, response_id: str, principal: Counted) -> Any:
    record = await responses.stored(gateway(request), principal.tenant, response_id)
    return responses.shown(record)


@router.delete(_ID, responses=error_responses(404))
async def delete_response(request: Request, response_id: str, principal: Counted) -> Any:
    await background.delete(gateway(request), principal.tenant, response_id)
    _workers(request.app).cancel_local(principal.tenant, response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.post(_ID + "/cancel", responses=error_responses(404))
async def cancel_response(request: Request, response_id: str, principal: Counted) -> Any:
    cancelled = await background.cancel(gateway(request), principal.tenant, response_id)
    _workers(request.app).cancel_local(principal.tenant, response_id)
    return cancelled


@router.get(_ID + "/input_items", responses=error_responses(404))
async def list_input_items(
    request: Request,
    response_id: str,
    principal: Counted,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Any:
    record = await responses.stored(gateway(request), principal.tenant, response_id)
    return responses.listed_items(record, limit, order, after)
