"""Adapter for OpenAI-compatible servers: vLLM, llama.cpp server, Ollama, TGI's Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from httpx_sse import EventSource, SSEError

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import UpstreamError
from edgeroute.types import Json, Kind
from edgeroute.upstreams.credentials import resolve
from edgeroute.upstreams.http import (
    map_status_error,
    map_transport_error,
    shared_client,
    timeout_for,
)
from edgeroute.wire.chunks import ChunkReader


def _url(model: ModelSpec, kind: Kind) -> str:
    """The route under the model's endpoint, which already ends in the API version."""
    return model.endpoint + kind.path.removeprefix("/v1")


class OpenAICompatible:
    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        client = shared_client()
        try:
            response = await client.post(
                _url(model, kind),
                json=payload,
                headers=resolve(model.credential),
                timeout=timeout_for(model),
            )
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, model) from exc
        if response.status_code >= 400:
            raise map_status_error(response.status_code, response.content, response.headers, model)
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError(
                f"Upstream for model '{model.name}' answered with invalid JSON. "
                "Retry the request or call another model.",
                code="upstream_malformed",
            ) from exc
        if not isinstance(body, dict):
            raise UpstreamError(
                f"Upstream for model '{model.name}' answered with JSON that is not an object.",
                code="upstream_malformed",
            )
        return body

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> AsyncIterator[Json]:
        client = shared_client()
        request = client.build_request(
            "POST",
            _url(model, kind),
            json=payload,
            headers={**resolve(model.credential), "Accept": "text/event-stream"},
            timeout=timeout_for(model),
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, model) from exc
        try:
            if response.status_code >= 400:
                body = await response.aread()
                raise map_status_error(response.status_code, body, response.headers, model)
            reader = ChunkReader(f"Upstream for model '{model.name}'")
            async for event in EventSource(response).aiter_sse():
                chunk = reader.read(event.data)
                if reader.done:
                    return
                if chunk is not None:
                    yield chunk
            reader.end()
        except SSEError as exc:  # answered, but not with a stream: the upstream's doing
            raise UpstreamError(
                f"Upstream for model '{model.name}' did not answer with an event stream "
                f"({exc}). Retry without 'stream', or check the model's protocol.",
                code="upstream_not_streaming",
            ) from exc
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, model) from exc
        finally:
            await response.aclose()
