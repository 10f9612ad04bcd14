"""Adapter for OpenAI-compatible servers: vLLM, llama.cpp server, Ollama, TGI's Messages API."""

from __future__ import annotations

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import UpstreamError
from edgeroute.types import Chunks, Json, Kind
from edgeroute.upstreams.base import upstream_for
from edgeroute.upstreams.http import event_stream, post_json
from edgeroute.wire.chunks import ChunkReader


def _url(model: ModelSpec, kind: Kind) -> str:
    """The route under the model's endpoint, which already ends in the API version."""
    return model.endpoint + kind.path.removeprefix("/v1")


class OpenAICompatible:
    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        response = await post_json(_url(model, kind), payload, model)
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError(
                f"{upstream_for(model)} answered with invalid JSON. "
                "Retry the request or call another model.",
                code="upstream_malformed",
                detail=f"{model.endpoint}: {response.text[:200]!r}",
            ) from exc
        if not isinstance(body, dict):
            raise UpstreamError(
                f"{upstream_for(model)} answered with JSON that is not an object.",
                code="upstream_malformed",
                detail=f"{model.endpoint}: {response.text[:200]!r}",
            )
        return body

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        from httpx_sse import SSEError  # loaded by event_stream already

        async with event_stream(_url(model, kind), payload, model) as events:
            reader = ChunkReader(upstream_for(model), model.endpoint)
            try:
                async for event in events:
                    chunk = reader.read(event.data)
                    if reader.done:
                        return
                    if chunk is not None:
                        yield chunk
                reader.end()
            except SSEError as exc:  # answered, but not with a stream: the upstream's doing
                raise UpstreamError(
                    f"{upstream_for(model)} did not answer with an event stream. Retry "
                    "without 'stream', or call another model.",
                    code="upstream_not_streaming",
                    detail=f"{model.endpoint}: {exc}. Check the model's protocol.",
                ) from exc
