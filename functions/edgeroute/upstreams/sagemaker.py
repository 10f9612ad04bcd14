"""Adapter for SageMaker real-time endpoints (boto3 plumbing in ``aws.py``).

Registry fields read:

- ``upstream_model`` (``wire_name``): the SageMaker *endpoint name*.
- ``inference_component`` (optional): the inference component on that endpoint that
  serves the model (``InferenceComponentName``); left out, the endpoint's own model answers.
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
from edgeroute.upstreams.base import context_exceeded, upstream_for
from edgeroute.wire.chunks import ChunkReader
from edgeroute.wire.sse import SSELines

SERVICE = "sagemaker-runtime"


def _located(model: ModelSpec) -> str:
    located = describe("SageMaker endpoint", model)
    component = model.inference_component
    return f"inference component '{component}' on {located}" if component else located


def _map_error(exc: Exception, model: ModelSpec) -> EdgerouteError:
    code, message, response = error_fields(exc)
    where, located = upstream_for(model), _located(model)
    if code == "ModelError":
        # The container answered with an error; its own status says whose fault it was.
        status = response.get("OriginalStatusCode")
        original = str(response.get("OriginalMessage") or message)[:500]
        logs = response.get("LogStreamArn")
        detail = f"{located}: the container answered {status}: {original}" + (
            f" (logs: {logs})" if logs else ""
        )
        if status == 413 or (status == 400 and "context" in original.lower()):
            return context_exceeded(f"model '{model.name}'", original, detail)
        if status in (400, 422):  # about the caller's request: theirs to read
            return InvalidRequest(f"{where} rejected the request: {original}", detail=detail)
        if status in (429, 503):
            return UpstreamUnavailable(
                f"{where} is overloaded ({status}). Retry after 5 s or call another model.",
                headers={"Retry-After": "5"},
                detail=detail,
            )
        return UpstreamError(
            f"{where} failed with status {status}. Retry the request or call another model.",
            detail=detail,
        )
    detail = f"{located}: {code}: {message}"
    if code == "ValidationError":
        lowered = message.lower()
        if "not found" in lowered:
            return UpstreamError(
                f"{where} cannot be called: the gateway's configuration for it is wrong. "
                "Call another model.",
                detail=f"{detail}. An operator must fix the model's 'upstream_model' (the "
                "endpoint name), its 'inference_component' or its region in the registry.",
            )
        if "too large" in lowered or "exceed" in lowered:
            return PayloadTooLarge(
                f"{where} refused the request body as too large. Send fewer or shorter inputs.",
                detail=detail,
            )
        return InvalidRequest(f"{where} rejected the request: {message}", detail=detail)
    if code in ("ModelStreamError", "InternalStreamFailure"):
        return UpstreamError(
            f"{where} failed mid-stream. The response is incomplete; retry it.",
            code="upstream_stream_error",
            detail=f"{located}: {response.get('ErrorCode') or code}: {message}",
        )
    return map_aws_error(exc, model, located, "sagemaker:InvokeEndpoint(WithResponseStream)")


def request_body(payload: Json) -> bytes:
    return json.dumps({k: v for k, v in payload.items() if k != "model"}).encode()


def _checked(kind: Kind, data: Any, model: ModelSpec) -> Json:
    key = "data" if kind is Kind.EMBEDDINGS else "choices"
    if not isinstance(data, dict) or (key not in data and "usage" not in data):
        raise UpstreamError(
            f"{upstream_for(model)} answered with something that is not an OpenAI "
            f"{kind.value} response. Call another model.",
            code="upstream_malformed",
            detail=f"{_located(model)}: {str(data)[:200]!r}. Serve the model with a container "
            "that speaks the OpenAI API (LMI, vLLM, TGI Messages) or use another protocol.",
        )
    return data


def _invoke(model: ModelSpec, body: bytes, *, stream: bool) -> Any:
    """InvokeEndpoint, or InvokeEndpointWithResponseStream: the answer's ``Body`` (blocking:
    call it in a worker thread)."""
    client = aws_client(SERVICE, model)
    invoke = client.invoke_endpoint_with_response_stream if stream else client.invoke_endpoint
    target = {"InferenceComponentName": model.inference_component}
    response = invoke(
        EndpointName=model.wire_name,
        Body=body,
        ContentType="application/json",
        Accept="text/event-stream" if stream else "application/json",
        **(target if model.inference_component else {}),
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
                f"{upstream_for(model)} answered with invalid JSON. Retry the request or call "
                "another model.",
                code="upstream_malformed",
                detail=f"{_located(model)}: {raw[:200]!r}",
            ) from exc
        return _checked(kind, data, model)

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        body = request_body({**payload, "stream": True})
        lines = SSELines()
        reader = ChunkReader(
            upstream_for(model), _located(model), lambda decoded: _checked(kind, decoded, model)
        )
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
