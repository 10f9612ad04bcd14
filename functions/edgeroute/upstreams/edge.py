"""The edge 'upstream': requests answered in this process by the ONNX edge models.

Only embeddings are served this way; the models run in a worker thread
(onnxruntime releases the GIL), so the event loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import InvalidRequest
from edgeroute.types import Chunks, Json, Kind
from edgeroute.upstreams.grouping import GROUP_EDGE, Grouper

MAX_BATCH = 256
MAX_REQUEST_TOKENS = 32_768
"""Tokens one request may have embedded here, summed over its inputs after truncation.
This is the gateway's own CPU time, so it is bounded tighter than the request schema's
``INPUT_TOKENS_CAP``: 64 inputs of 512 tokens, measured at about 2 s of one core (256
inputs of 20 kB with ``truncate`` took over 60 s before this bound)."""


def _texts(payload: Json) -> list[str]:
    raw = payload.get("input")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise InvalidRequest(
            "'input' must be a non-empty string or a list of strings.", param="input"
        )
    if len(items) > MAX_BATCH:
        raise InvalidRequest(
            f"'input' has {len(items)} items; the edge embedder takes at most {MAX_BATCH} "
            "per request. Split the list into several requests.",
            param="input",
        )
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidRequest(
                f"'input[{index}]' is not a string: the edge embedder takes text, not "
                "token ids. Send strings.",
                param="input",
            )
        if not item.strip():
            raise InvalidRequest(
                f"'input[{index}]' is empty. Remove it or send some text.", param="input"
            )
    return items


def _prepared(payload: Json, model_name: str) -> tuple[list[list[int]], int]:
    """The request's token ids and token count, or the ``InvalidRequest`` it earns."""
    from edgeroute.edge import embedder  # onnxruntime loads only where a model embeds

    texts = _texts(payload)
    dimensions = payload.get("dimensions")
    if dimensions is not None and dimensions != embedder.DIMENSIONS:
        raise InvalidRequest(
            f"'dimensions' {dimensions} is not available: model '{model_name}' gives "
            f"{embedder.DIMENSIONS}-dimensional vectors. Leave 'dimensions' out.",
            param="dimensions",
        )
    encoded = embedder.encode(texts)
    too_long = [i for i, cut in enumerate(encoded.truncated) if cut]
    if too_long and not payload.get("truncate"):
        raise InvalidRequest(
            f"'input[{too_long[0]}]' is longer than the {embedder.MAX_TOKENS} tokens model "
            f"'{model_name}' reads ({len(too_long)} input(s) are). Shorten it, or send "
            '"truncate": true to embed the first tokens only.',
            param="input",
            code="input_too_long",
        )
    tokens = sum(encoded.lengths)
    if tokens > MAX_REQUEST_TOKENS:
        raise InvalidRequest(
            f"The {len(texts)} input(s) come to {tokens} tokens; model '{model_name}' embeds "
            f"at most {MAX_REQUEST_TOKENS} tokens per request (each input counts up to "
            f"{embedder.MAX_TOKENS}). Split 'input' over several requests.",
            param="input",
            code="max_tokens_per_request",
        )
    return encoded.ids, tokens


def _response(payload: Json, model_name: str, vectors: Any, tokens: int) -> Json:
    as_base64 = payload.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": base64.b64encode(vec.astype("<f4").tobytes()).decode()
            if as_base64
            else [round(float(x), 7) for x in vec],
        }
        for i, vec in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model_name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "created": int(time.time()),
    }


def embed_payload(payload: Json, model_name: str) -> Json:
    """The OpenAI embeddings response for this request (runs the model; blocking)."""
    from edgeroute.edge import embedder

    ids, tokens = _prepared(payload, model_name)
    return _response(payload, model_name, embedder.embed_ids(ids), tokens)


def embed_payloads(requests: list[tuple[Json, str]]) -> list[Json | Exception]:
    """Each request's response (or its ``InvalidRequest``), all their inputs embedded in
    one padded inference: many small requests cost about what one request of their
    inputs costs (blocking)."""
    from edgeroute.edge import embedder

    prepared: list[tuple[list[list[int]], int] | Exception] = []
    for payload, name in requests:
        try:
            prepared.append(_prepared(payload, name))
        except InvalidRequest as exc:
            prepared.append(exc)
    ids = [row for item in prepared if not isinstance(item, Exception) for row in item[0]]
    vectors: Any = embedder.embed_together(ids) if ids else []
    answers: list[Json | Exception] = []
    start = 0
    for (payload, name), item in zip(requests, prepared, strict=True):
        if isinstance(item, Exception):
            answers.append(item)
            continue
        rows, tokens = item
        answers.append(_response(payload, name, vectors[start : start + len(rows)], tokens))
        start += len(rows)
    return answers


class EdgeModels:
    def __init__(self) -> None:
        self.grouper: Grouper[tuple[Json, str], Json] = Grouper(embed_payloads)

    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        if kind is not Kind.EMBEDDINGS:
            raise InvalidRequest(
                f"Model '{model.name}' runs at the edge and serves embeddings only.",
                param="model",
            )
        if GROUP_EDGE.get():  # a batch job's lines: one inference for those in flight
            return await self.grouper.run((payload, model.name))
        return await asyncio.to_thread(embed_payload, payload, model.name)

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        raise InvalidRequest(
            f"Model '{model.name}' runs at the edge and does not stream.", param="stream"
        )
        yield {}  # pragma: no cover - makes this an async generator
