"""Adapter for SageMaker real-time endpoints (boto3 plumbing in ``aws.py``).

Registry fields read:

- ``upstream_model`` (``wire_name``): the SageMaker *endpoint name*.
- ``endpoint`` (optional): an ``https://runtime.sagemaker.<region>.amazonaws.com`` URL, or
  a VPC endpoint URL; the region is read from its host and the URL is used as boto3's
  ``endpoint_url``. Left out, boto3 uses ``AWS_REGION``/``AWS_DEFAULT_REGION`` (on Lambda,
  the function's own region), which is the usual setup.
- ``timeouts.connect`` and ``timeouts.read``: botocore's connect and read timeouts.
- ``credential`` is not used: boto3's credential chain (the Lambda role) signs requests.

The container must speak the OpenAI API (LMI, vLLM, TGI's Messages API), which is the
common case today: the OpenAI JSON body is sent as is with ``ContentType:
application/json``, minus ``model`` (an endpoint serves one model, and vLLM rejects a
name it does not serve). Streams come back as ``PayloadPart`` events whose bytes
concatenate into SSE lines, split anywhere, even inside a UTF-8 character.

boto3 is synchronous, so calls run in worker threads; a stream is read by its own thread
into a bounded queue, and closing the async generator closes the botocore stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import (
    EdgerouteError,
    InvalidRequest,
    PayloadTooLarge,
    UpstreamError,
    UpstreamUnavailable,
)
from edgeroute.types import Chunks, Json, Kind
from edgeroute.upstreams.aws import aws_client, describe, error_fields, event_stream, map_aws_error
from edgeroute.upstreams.base import context_exceeded
from edgeroute.wire.chunks import ChunkReader
from edgeroute.wire.sse import SSELines

SERVICE = "sagemaker-runtime"


def _where(model: ModelSpec) -> str:
    return describe("SageMaker endpoint", model)


def _map_error(exc: Exception, model: ModelSpec) -> EdgerouteError:
    code, message, response = error_fields(exc)
    where = _where(model)
    if code == "ModelError":
        # The container answered with an error; its own status says whose fault it was.
        status = response.get("OriginalStatusCode")
        original = str(response.get("OriginalMessage") or message)[:500]
        logs = response.get("LogStreamArn")
        if status == 413 or (status == 400 and "context" in original.lower()):
            return context_exceeded(where, original)
        if status in (400, 422):
            return InvalidRequest(f"{where} rejected the request: {original}")
        if status in (429, 503):
            return UpstreamUnavailable(
                f"{where} is overloaded ({status}: {original}). Retry after 5 s or call "
                "another model.",
                headers={"Retry-After": "5"},
            )
        return UpstreamError(
            f"{where}'s container failed with status {status}: {original}"
            + (f" (logs: {logs})" if logs else "")
        )
    if code == "ValidationError":
        lowered = message.lower()
        if "not found" in lowered:
            return UpstreamError(
                f"{where} does not exist ({message}). An operator must fix the model's "
                "'upstream_model' (the endpoint name) or its region in the registry."
            )
        if "too large" in lowered or "exceed" in lowered:
            return PayloadTooLarge(f"{where} refused the request body: {message}")
        return InvalidRequest(f"{where} rejected the request: {message}")
    if code in ("ModelStreamError", "InternalStreamFailure"):
        detail = response.get("ErrorCode") or code
        return UpstreamError(
            f"{where} failed mid-stream ({detail}: {message}). The response is incomplete; "
            "retry it.",
            code="upstream_stream_error",
        )
    return map_aws_error(exc, model, where, "sagemaker:InvokeEndpoint(WithResponseStream)")


def request_body(payload: Json) -> bytes:
    return json.dumps({k: v for k, v in payload.items() if k != "model"}).encode()


def _checked(kind: Kind, data: Any, model: ModelSpec) -> Json:
    key = "data" if kind is Kind.EMBEDDINGS else "choices"
    if not isinstance(data, dict) or (key not in data and "usage" not in data):
        raise UpstreamError(
            f"{_where(model)} answered with something that is not an OpenAI {kind.value} "
            f"response ({str(data)[:80]!r}). Serve the model with a container that speaks the "
            "OpenAI API (LMI, vLLM, TGI Messages) or use another protocol.",
            code="upstream_malformed",
        )
    return data


def _invoke(model: ModelSpec, body: bytes, *, stream: bool) -> Any:
    """InvokeEndpoint, or InvokeEndpointWithResponseStream: the answer's ``Body`` (blocking:
    call it in a worker thread)."""
    client = aws_client(SERVICE, model)
    invoke = client.invoke_endpoint_with_response_stream if stream else client.invoke_endpoint
    response = invoke(
        EndpointName=model.wire_name,
        Body=body,
        ContentType="application/json",
        Accept="text/event-stream" if stream else "application/json",
    )
    return response["Body"]


class SageMakerEndpoint:
    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        body = request_body(payload)
        try:
            raw = await asyncio.to_thread(lambda: bytes(_invoke(model, body, stream=False).read()))
        except Exception as exc:
            raise _map_error(exc, model) from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(
                f"{_where(model)} answered with invalid JSON ({raw[:80]!r}). Retry the request "
                "or call another model.",
                code="upstream_malformed",
            ) from exc
        return _checked(kind, data, model)

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        body = request_body({**payload, "stream": True})
        lines = SSELines()
        reader = ChunkReader(_where(model), lambda decoded: _checked(kind, decoded, model))
        opened = event_stream(lambda: _invoke(model, body, stream=True), model, _map_error)
        async with opened as events:
            async for event in events:
                part = event.get("PayloadPart") if isinstance(event, dict) else None
                if part is None:
                    continue  # errors arrive as exceptions; other events carry nothing
                for data in lines.feed(part.get("Bytes") or b""):
                    chunk = reader.read(data)
                    if reader.done:
                        return
                    if chunk is not None:
                        yield chunk
            for data in lines.flush():
                if (chunk := reader.read(data)) is not None:
                    yield chunk
            reader.end()
