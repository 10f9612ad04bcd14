"""Adapter for Amazon Bedrock: chat and completions through Converse and ConverseStream,
embeddings through InvokeModel for Amazon Titan embedding models.

Registry fields read:

- ``upstream_model`` (``wire_name``): the ``modelId``: a model ID, an inference profile ID
  (``us.anthropic...``) or an ARN.
- ``endpoint`` (optional): an ``https://bedrock-runtime.<region>.amazonaws.com`` or VPC
  endpoint URL, whose host names the region; left out, ``AWS_REGION`` decides.
- ``timeouts.connect`` and ``timeouts.read``; ``credential`` is not used (the IAM role signs).

Parameters Converse has no field for (``seed``, penalties, ``logit_bias``,
``response_format``, ``logprobs``) are dropped rather than refused, so requests written
for other models still run. Client, thread and error plumbing live in ``aws.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
from typing import Any

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import (
    EdgerouteError,
    InvalidRequest,
    UpstreamError,
    UpstreamTimeout,
)
from edgeroute.types import Chunks, Json, Kind
from edgeroute.upstreams.aws import aws_client, describe, error_fields, event_stream, map_aws_error
from edgeroute.upstreams.base import context_exceeded, upstream_for
from edgeroute.upstreams.converse import ConverseStreamState, from_converse, to_converse
from edgeroute.wire.chunks import stream_ended_early

SERVICE = "bedrock-runtime"
MAX_EMBEDDING_INPUTS = 32  # Titan embeds one text per call; more would be slow in one request
_TOO_LONG = re.compile(r"too long|too large|context (?:window|length)|too many (?:input )?tokens")


def _located(model: ModelSpec) -> str:
    return describe("Bedrock model", model)


def _map_error(exc: Exception, model: ModelSpec) -> EdgerouteError:
    code, message, _ = error_fields(exc)
    where, located = upstream_for(model), _located(model)
    detail = f"{located}: {code}: {message}"
    registry_fix = "An operator must fix the model's 'upstream_model' in the registry"
    misconfigured = (
        f"{where} cannot be called: the gateway's configuration for it is wrong. "
        "Call another model."
    )
    if code == "ValidationException":
        lowered = message.lower()
        if _TOO_LONG.search(lowered):
            return context_exceeded(f"model '{model.name}'", message, detail)
        if "model identifier is invalid" in lowered or "on-demand throughput" in lowered:
            return UpstreamError(
                misconfigured,
                detail=f"{detail}. {registry_fix}: a model ID enabled in this region, or an "
                "inference profile ID such as 'us.<model id>'.",
            )
        return InvalidRequest(f"{where} rejected the request: {message}", detail=detail)
    if code == "ResourceNotFoundException":
        return UpstreamError(misconfigured, detail=f"{detail}. {registry_fix}.")
    if code == "ModelTimeoutException":
        return UpstreamTimeout(
            f"{where} took too long to answer. Retry later or lower 'max_tokens'.",
            headers={"Retry-After": "5"},
            detail=detail,
        )
    if code == "ModelErrorException":
        return UpstreamError(f"{where} failed while generating. Retry the request.", detail=detail)
    if code == "ModelStreamErrorException":
        return UpstreamError(
            f"{where} failed mid-stream. The response is incomplete; retry it.",
            code="upstream_stream_error",
            detail=detail,
        )
    return map_aws_error(
        exc,
        model,
        located,
        "bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream on this model "
        "(and model access in the Bedrock console)",
    )


def _embedding_inputs(payload: Json, model: ModelSpec) -> list[str]:
    if not model.wire_name.startswith("amazon.titan-embed"):
        raise InvalidRequest(
            f"Model '{model.name}' serves no embeddings through edgeroute: only Amazon Titan "
            "embedding models are supported on Bedrock. Call an embeddings model.",
        )
    raw = payload.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("'input' must be a string or a list of strings.", param="input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(
            f"'input' has {len(texts)} items; model '{model.name}' takes at most "
            f"{MAX_EMBEDDING_INPUTS} per request. Split the list.",
            param="input",
        )
    return texts


def _embed(texts: list[str], payload: Json, model: ModelSpec) -> Json:
    """Titan's InvokeModel, one text per call (blocking: runs in a worker thread)."""
    client = aws_client(SERVICE, model)
    data: list[Json] = []
    tokens = 0
    for index, text in enumerate(texts):
        body: Json = {"inputText": text}
        if payload.get("dimensions"):
            body["dimensions"] = payload["dimensions"]
        response = client.invoke_model(
            modelId=model.wire_name,
            body=json.dumps(body).encode(),
            contentType="application/json",
            accept="application/json",
        )
        answer = json.loads(response["body"].read())
        vector = [float(x) for x in answer["embedding"]]
        tokens += int(answer.get("inputTextTokenCount") or 0)
        embedding: Any = vector
        if payload.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model.name, "usage": usage}


class BedrockConverse:
    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        if kind is Kind.EMBEDDINGS:
            texts = _embedding_inputs(payload, model)
            try:
                return await asyncio.to_thread(_embed, texts, payload, model)
            except (KeyError, TypeError, ValueError) as exc:
                raise UpstreamError(
                    f"{upstream_for(model)} answered without an 'embedding'.",
                    code="upstream_malformed",
                    detail=f"{_located(model)}: {type(exc).__name__}: {exc}",
                ) from exc
            except Exception as exc:
                raise _map_error(exc, model) from exc
        request = to_converse(kind, payload, model)
        try:
            response = await asyncio.to_thread(
                lambda: aws_client(SERVICE, model).converse(**request)
            )
        except Exception as exc:
            raise _map_error(exc, model) from exc
        return from_converse(kind, response, model)

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        if kind is Kind.EMBEDDINGS:
            raise InvalidRequest("Embeddings are not streamed; send the request without 'stream'.")
        request = to_converse(kind, payload, model)

        def call() -> Any:
            return aws_client(SERVICE, model).converse_stream(**request)["stream"]

        async with event_stream(call, model, _map_error) as events:
            state = ConverseStreamState(kind, model)
            async for event in events:
                for chunk in state.on(event):
                    yield chunk
            if not state.stopped:
                raise stream_ended_early(upstream_for(model), _located(model))
