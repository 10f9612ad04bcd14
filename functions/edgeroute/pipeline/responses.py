"""The Responses API on the request path: a Responses request becomes a chat ``Call``
that goes through ``run`` (auth was done; quotas, cache, routing, fallbacks, ledger
happen there), and its answer becomes a Response, kept in the store per tenant.

Invariant: a stored record's ``response`` always shows the record's ``status``; the
conversation state of a response (``messages``: every earlier turn, its input and its
output, as chat messages; instructions are not carried over, as in OpenAI's API) is
what a later ``previous_response_id`` continues from.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from pydantic import ValidationError

from edgeroute.errors import InvalidRequest, NotFound
from edgeroute.pipeline import run as pipeline
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.gateway import Gateway
from edgeroute.store.base import MAX_ITEM_BYTES
from edgeroute.store.responses import Record
from edgeroute.types import Json
from edgeroute.wire.responses import (
    chat_messages,
    check_supported,
    from_chat,
    input_items,
    new_id,
    output_messages,
    shell,
    to_chat,
)
from edgeroute.wire.responses_stream import ResponsesStream, encode
from edgeroute.wire.schemas import ChatCompletionRequest
from edgeroute.wire.sse import DONE, SSELines
from edgeroute.wire.validation import validation_error

# Chat fields named as a Responses caller sent them, for errors about the translation.
# A message's index is not an input item's (instructions and earlier turns come first,
# function calls in a row merge): "messages[...]..." is named as "input" alone.
_PARAMS = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "response_format": "text.format",
}


def as_responses_error(error: InvalidRequest) -> InvalidRequest:
    """A chat-side refusal with its ``param`` named as the Responses request names it."""
    param = error.param or ""
    base = param.split(".")[0].split("[")[0]
    if base not in _PARAMS:
        return error
    renamed = _PARAMS[base] + ("" if base == "messages" else param[len(base) :])
    message = error.message.replace(f"'{param}'", f"'{renamed}'")
    return type(error)(message, param=renamed, code=error.code, headers=error.headers)


# A stored Response keeps its whole conversation in one store item (DynamoDB's limit,
# which SQLite applies too): the input may take half, leaving room for the output.
STORED_CONVERSATION_BYTES = MAX_ITEM_BYTES // 2


class Prepared:
    """A Responses request checked and translated: the chat payload to run, and what
    the stored record needs."""

    def __init__(self, body: Json, history: list[Json]) -> None:
        check_supported(body)
        if body.get("background") and body.get("store") is False:
            raise InvalidRequest(
                "Background responses must be stored ('store' cannot be false with "
                "'background': true): send store true or leave it out.",
                param="store",
            )
        if body.get("background") and body.get("stream"):
            raise InvalidRequest(
                "Streaming a background response is not supported: send 'stream' false "
                "and poll GET /v1/responses/{id}.",
                param="stream",
            )
        self.body = body
        self.id = new_id("resp")
        self.items = input_items(body)
        self.history = history
        try:
            chat = to_chat(body, self.items, history)
            self.chat = ChatCompletionRequest.model_validate(chat).payload()
        except ValidationError as exc:
            raise as_responses_error(validation_error(exc)) from None
        self.created_at = time.time()
        if self.stored and len(json.dumps(self.chat["messages"])) > STORED_CONVERSATION_BYTES:
            raise InvalidRequest(
                "This conversation is too long to store as one Response (over "
                f"{STORED_CONVERSATION_BYTES:,} bytes with its earlier turns): send "
                "'store': false, with the turns you need in 'input'.",
                param="store" if history else "input",
                code="conversation_too_large",
            )

    @property
    def stored(self) -> bool:
        return self.body.get("store") is not False

    def shell(self, status: str) -> Json:
        return shell(self.id, self.body, status, self.created_at)

    def record(self, call: Call, response: Json) -> Record:
        """The stored record of this response (finished, or queued when ``response``
        says so)."""
        return {
            "id": self.id,
            "tenant": call.principal.tenant,
            "key_id": call.principal.key_id,
            "request_id": call.request_id,
            "status": response["status"],
            "holder": "",
            "lease_until": 0.0,
            "background": bool(self.body.get("background")),
            "response": response,
            "items": self.items,
            "messages": conversation(self.history + chat_messages(self.items), response),
            # What a background worker runs; a finished response needs only its messages.
            **({"chat": self.chat} if response["status"] == "queued" else {}),
        }


def conversation(before: list[Json], response: Json) -> list[Json]:
    """The conversation state after ``response``: its input, then its output."""
    return before + output_messages(response) if response["status"] != "queued" else before


async def history(gw: Gateway, tenant: str, previous_id: str | None) -> list[Json]:
    """The earlier turns of ``previous_response_id``; a 404 for an id this tenant does
    not have (another tenant's, expired or deleted)."""
    if previous_id is None:
        return []
    record = await gw.store.responses.get(tenant, previous_id)
    if record is None:
        raise response_not_found(previous_id, "previous_response_id")
    if record["status"] not in ("completed", "incomplete"):
        raise InvalidRequest(
            f"Response '{previous_id}' is {record['status']}, not completed: continue from "
            "a completed response.",
            param="previous_response_id",
        )
    messages: list[Json] = record["messages"]
    return messages


def response_not_found(response_id: str, param: str = "response_id") -> NotFound:
    return NotFound(
        f"No response with id '{response_id}' is stored for this key's tenant (it may "
        "have expired, been deleted, or been created with store false).",
        param=param,
        code="response_not_found",
    )


async def keep(gw: Gateway, record: Record) -> None:
    await gw.store.responses.put(record["tenant"], record["id"], record, kept_until(gw))


async def answer(gw: Gateway, call: Call, prepared: Prepared, result: pipeline.Buffered) -> Json:
    """A buffered chat answer as the finished Response, stored when asked."""
    response = from_chat(result.body, prepared.shell("completed"))
    if prepared.stored:
        await keep(gw, prepared.record(call, response))
    return response


async def events(
    gw: Gateway, call: Call, prepared: Prepared, chat_events: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """The chat stream's SSE bytes as Responses events; the finished Response stored
    at the end, however the stream ended."""
    stream = ResponsesStream(prepared.shell("in_progress"))
    lines = SSELines()
    ended = False
    try:
        for event in stream.start():
            yield encode(event)
        async for part in chat_events:
            for data in lines.feed(part):
                if data == DONE or ended:
                    continue
                translated = stream.feed(json.loads(data))
                ended = stream.result["status"] == "failed"
                for event in translated:
                    yield encode(event)
        if not ended:
            for event in stream.finish():
                yield encode(event)
    finally:
        with anyio.CancelScope(shield=True):
            aclose = getattr(chat_events, "aclose", None)
            if aclose is not None:
                await aclose()
            if prepared.stored and stream.result["status"] != "in_progress":
                await keep(gw, prepared.record(call, stream.result))


def shown(record: Record) -> Json:
    """The Response a stored record shows."""
    response: Json = dict(record["response"], status=record["status"])
    return response


async def stored(gw: Gateway, tenant: str, response_id: str) -> Record:
    record = await gw.store.responses.get(tenant, response_id)
    if record is None:
        raise response_not_found(response_id)
    return record


def finish(record: Record, status: str, fields: dict[str, Any]) -> Record:
    """``record`` ended as ``status``, its worker's lease let go."""
    response = dict(record["response"], status=status, **fields)
    return dict(record, status=status, holder="", lease_until=0.0, response=response)


def kept_until(gw: Gateway) -> float:
    """When a record written now expires."""
    return time.time() + gw.settings.responses.ttl_s


def listed_items(record: Record, limit: int, order: str, after: str | None) -> Json:
    """``GET /v1/responses/{id}/input_items``: one page of the input items."""
    items: list[Json] = list(record["items"])
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [i.get("id") for i in items]
        if after not in ids:
            raise InvalidRequest(
                f"'after' names no input item of this response ('{after}').", param="after"
            )
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > limit,
    }
