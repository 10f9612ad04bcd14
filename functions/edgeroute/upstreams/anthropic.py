"""Adapter for upstreams that speak Anthropic's Messages API (``protocol: anthropic``):
Anthropic itself, or a server compatible with it, at ``<endpoint>/messages``.

The chat request is translated to a Messages request and the answer back
(``wire/anthropic/outbound``), streams included. The key goes where the registry's
``credential`` says; for Anthropic that is ``header: x-api-key`` with ``scheme: ""``.
"""

from __future__ import annotations

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import InvalidRequest, UpstreamError
from edgeroute.types import Chunks, Json, Kind
from edgeroute.upstreams.base import upstream_for
from edgeroute.upstreams.http import event_stream, post_json
from edgeroute.wire.anthropic.outbound import ChatChunks, chat_from_message, messages_request
from edgeroute.wire.chunks import ChunkReader, stream_ended_early

VERSION_HEADERS = {"anthropic-version": "2023-06-01"}


def _request(kind: Kind, payload: Json, model: ModelSpec) -> tuple[str, Json]:
    if kind is not Kind.CHAT:
        raise InvalidRequest(
            f"Model '{model.name}' speaks Anthropic's Messages API, which serves chat only: "
            "call /v1/chat/completions, or another model.",
            param="model",
        )
    body = messages_request(payload, model.name, model.wire_name, model.max_output_tokens)
    return model.endpoint + "/messages", body


class AnthropicMessages:
    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        url, body = _request(kind, payload, model)
        response = await post_json(url, body, model, VERSION_HEADERS)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("type") != "message":
            raise UpstreamError(
                f"{upstream_for(model)} answered with something that is not a Message.",
                code="upstream_malformed",
                detail=f"{model.endpoint}: {response.text[:200]!r}",
            )
        return chat_from_message(answer, model.name)

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        url, body = _request(kind, payload, model)
        async with event_stream(url, body, model, VERSION_HEADERS) as events:
            reader = ChunkReader(upstream_for(model), model.endpoint)
            chunks = ChatChunks(model.name)
            async for event in events:
                decoded = reader.read(event.data)
                for chunk in chunks.feed(decoded) if decoded is not None else ():
                    yield chunk
                if chunks.done:
                    return
            raise stream_ended_early(upstream_for(model), model.endpoint)
