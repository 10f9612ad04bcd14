"""Adapter for OpenAI-compatible servers: vLLM, llama.cpp server, Ollama, TGI's Messages API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
from httpx_sse import EventSource, SSEError

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import UpstreamError
from edgeroute.types import Json, Kind
from edgeroute.upstreams.base import stream_ended_early
from edgeroute.upstreams.credentials import resolve
from edgeroute.upstreams.http import (
    map_status_error,
    map_transport_error,
    shared_client,
    timeout_for,
)


def _url(model: ModelSpec, kind: Kind) -> str:
    """The route under the model's endpoint, which already ends in the API version."""
    return model.endpoint + kind.path.removeprefix("/v1")


def _finished(chunk: Json, finished: set[int]) -> None:
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason"):
            finished.add(int(choice.get("index", 0)))


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
            finished: set[int] = set()
            async for event in EventSource(response).aiter_sse():
                if event.data.strip() == "[DONE]":
                    return
                if not event.data.strip():
                    continue
                try:
                    chunk = json.loads(event.data)
                except ValueError as exc:
                    raise UpstreamError(
                        f"Upstream for model '{model.name}' sent a malformed stream event "
                        f"({event.data[:80]!r}). The response is incomplete; retry it.",
                        code="upstream_malformed",
                    ) from exc
                if not isinstance(chunk, dict):
                    raise UpstreamError(
                        f"Upstream for model '{model.name}' sent a stream event that is not "
                        "a JSON object. The response is incomplete; retry it.",
                        code="upstream_malformed",
                    )
                if "error" in chunk:
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else error
                    raise UpstreamError(
                        f"Upstream for model '{model.name}' failed mid-stream: {message}",
                        code="upstream_stream_error",
                    )
                _finished(chunk, finished)
                yield chunk
            if not finished:
                raise stream_ended_early(f"Upstream for model '{model.name}'")
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
