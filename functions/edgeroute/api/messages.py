"""Anthropic's Messages API: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

A Messages request is checked (``wire/anthropic/schema``), translated to a chat request
and served by the same pipeline as ``/v1/chat/completions`` (auth, the ``chat`` scope,
quotas, cache, ``auto`` routing, fallbacks, ledger); the answer is translated back.

Invariant: every failure on these routes, authentication included, is answered in
Anthropic's error shape and status codes (``wire/anthropic/errors``); the OpenAI routes
keep OpenAI's. The key goes in ``x-api-key`` (or ``Authorization: Bearer``);
``anthropic-version`` and ``anthropic-beta`` are accepted and not required: the
translation serves the 2023-06-01 version, the only one Anthropic's SDKs send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from edgeroute.api.openapi import STREAMING_OK
from edgeroute.api.responses import AnyTextJSONResponse
from edgeroute.api.routes import AnswerShape, authenticated, gateway, serve
from edgeroute.errors import EdgerouteError, InvalidRequest, NotFound
from edgeroute.pipeline.admit import count_request
from edgeroute.pipeline.autoroute import VIRTUAL
from edgeroute.types import Kind
from edgeroute.wire.anthropic.errors import anthropic_error
from edgeroute.wire.anthropic.events import MessageEvents, messages_stream
from edgeroute.wire.anthropic.inbound import (
    chat_request,
    message_from_chat,
    message_id,
    misplaced_block,
)
from edgeroute.wire.anthropic.schema import CountTokensRequest, MessagesRequest
from edgeroute.wire.schemas import ChatCompletionRequest
from edgeroute.wire.tokens import estimate_prompt_tokens, estimate_tokens
from edgeroute.wire.validation import validation_error

router = APIRouter()
_Body = TypeVar("_Body", bound=BaseModel)
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": f"Anthropic's error shape ({status})"}
    for status in (400, 401, 403, 404, 413, 429, 500, 529)
}


def _error_response(request: Request, error: EdgerouteError) -> AnyTextJSONResponse:
    request_id = getattr(request.state, "request_id", None)
    error.log_detail(request_id)
    status, body = anthropic_error(error)
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
        headers["request-id"] = request_id
    return AnyTextJSONResponse(body, status_code=status, headers=headers)


async def _checked(request: Request, schema: type[_Body]) -> _Body:
    try:
        data = await request.json()
    except ValueError as exc:
        raise InvalidRequest(
            "The request body is not valid JSON. Send a JSON object with "
            "'Content-Type: application/json'.",
            code="invalid_json",
        ) from exc
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def _chat_body(request: MessagesRequest) -> ChatCompletionRequest:
    misplaced = misplaced_block(request)
    if misplaced is not None:
        field, why = misplaced
        raise InvalidRequest(f"Invalid value for '{field}': {why}.", param=field)
    try:
        return ChatCompletionRequest.model_validate(chat_request(request))
    except ValidationError as exc:  # a chat rule the Messages schema does not state
        raise validation_error(exc) from exc


@router.post("/v1/messages", responses={**STREAMING_OK, **_ERRORS})
async def messages(request: Request) -> Response:
    """A Message, or a stream of Messages events with ``"stream": true``."""
    try:
        principal = await authenticated(request)
        body = await _checked(request, MessagesRequest)
        msg_id = message_id(request.state.request_id)
        stops = body.stop_sequences

        def events(chat: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            return messages_stream(chat, MessageEvents(msg_id, body.model, stops))

        shape = AnswerShape(body=lambda chat: message_from_chat(chat, msg_id, stops), events=events)
        answer = await serve(request, principal, Kind.CHAT, _chat_body(body), shape)
    except EdgerouteError as exc:
        return _error_response(request, exc)
    answer.headers["request-id"] = request.state.request_id  # where Anthropic's SDKs look
    return answer


@router.post("/v1/messages/count_tokens", responses=_ERRORS)
async def count_tokens(request: Request) -> Response:
    """The prompt's tokens, estimated without a tokenizer (``wire/tokens``): what
    admission and routing count, not the upstream's exact tokenizer."""
    try:
        principal = await authenticated(request)
        body = await _checked(request, CountTokensRequest)
        await count_request(gateway(request).store, principal)
        model = gateway(request).registry.get(body.model)
        known = body.model in VIRTUAL or (model is not None and principal.allows(model.name))
        if not known:
            raise NotFound(
                f"The model '{body.model}' does not exist. GET /v1/models lists the models "
                "this key can use.",
                param="model",
            )
        as_messages = MessagesRequest.model_validate(
            {**body.model_dump(exclude_none=True), "max_tokens": 1}
        )
        chat = _chat_body(as_messages).payload()
        tools = "".join(str(t) for t in chat.get("tools") or ())
        tokens = estimate_prompt_tokens(chat["messages"]) + estimate_tokens(tools)
        return AnyTextJSONResponse({"input_tokens": tokens})
    except EdgerouteError as exc:
        return _error_response(request, exc)
