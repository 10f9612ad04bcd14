"""OpenAI's batch file formats: parse one input line, shape one output line.

Input, one JSON object a line::

    {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

Output, one line per input line, in input order::

    {"id": "batch_req_...", "custom_id": "q1",
     "response": {"status_code": 200, "request_id": "req_...", "body": {...}},
     "error": null}

A line the gateway answered (even with a 4xx/5xx) has a ``response``; a line that is
not a request at all (bad JSON, no ``custom_id``, an unsupported ``url``) has
``response: null`` and an ``error``, as OpenAI reports them. A file that is not JSONL
at all (``not_jsonl``) fails its whole job instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from edgeroute.errors import EdgerouteError
from edgeroute.types import Json, Kind
from edgeroute.wire.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModerationRequest,
    RequestBody,
)
from edgeroute.wire.validation import validation_error

# The routes a batch line may name (``Kind.path``), each checked by its HTTP schema.
SCHEMAS: dict[Kind, type[RequestBody]] = {
    Kind.CHAT: ChatCompletionRequest,
    Kind.COMPLETIONS: CompletionRequest,
    Kind.EMBEDDINGS: EmbeddingRequest,
    Kind.MODERATIONS: ModerationRequest,
}
# Batch answers are buffered by definition; a stream flag in a line is ignored.
_STREAM_FIELDS = ("stream", "stream_options")


class LineError(Exception):
    """The line is not a usable request; it becomes an ``error`` output line."""

    def __init__(self, code: str, message: str, custom_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.custom_id = custom_id


@dataclass(frozen=True)
class BatchLine:
    number: int  # 1-based, as editors show it
    custom_id: str
    kind: Kind
    body: Any  # the raw "body" object, validated later like an HTTP request body


def parse_line(number: int, raw: bytes | str) -> BatchLine:
    """The request on one input line, or ``LineError`` saying what is wrong with it."""
    where = f"line {number}"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LineError("invalid_json", f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LineError("invalid_request", f"{where} must be a JSON object")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise LineError("missing_custom_id", f"{where} needs a non-empty string 'custom_id'")
    method = data.get("method", "POST")
    if method != "POST":
        raise LineError(
            "invalid_method", f"{where}: method must be POST, not {method!r}", custom_id
        )
    url = data.get("url")
    kind = Kind.from_path(url) if isinstance(url, str) else None
    if kind is None or kind not in SCHEMAS:
        routes = ", ".join(k.path for k in SCHEMAS)
        raise LineError("invalid_url", f"{where}: url {url!r} is not one of {routes}", custom_id)
    if not isinstance(data.get("body"), dict):
        raise LineError("invalid_body", f"{where}: 'body' must be a JSON object", custom_id)
    return BatchLine(number, custom_id, kind, data["body"])


def validated_payload(line: BatchLine) -> Json:
    """The body as the pipeline takes it, checked by the HTTP API's own schemas so a
    batch line and an HTTP request get the same 400 for the same mistake."""
    schema = SCHEMAS[line.kind]
    try:
        parsed = schema.model_validate(line.body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    payload = parsed.payload()
    for name in _STREAM_FIELDS:
        payload.pop(name, None)
    return payload


def _line_id() -> str:
    return "batch_req_" + os.urandom(12).hex()


def response_line(custom_id: str, request_id: str, status: int, body: Json) -> Json:
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }


def failure_line(custom_id: str, request_id: str, error: EdgerouteError) -> Json:
    return response_line(custom_id, request_id, error.status_code, error.body())


def error_line(custom_id: str | None, code: str, message: str) -> Json:
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def encode(lines: list[Json]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)


def not_jsonl(raw: bytes) -> str | None:
    """Why ``raw`` is not a JSONL file of requests, or ``None`` when it may be one."""
    if b"\x00" in raw:
        return "the input file is binary, not JSONL: upload one JSON request object per line"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the input file is not UTF-8 text ({exc}); a batch file is UTF-8 JSONL"
    stripped = text.lstrip()
    if not stripped:
        return "the input file is empty: put one JSON request object per line"
    if stripped.startswith("["):
        return (
            "the input file is a JSON array, not JSONL: write each request object on a "
            "line of its own, without the enclosing [ ]"
        )
    for line in text.splitlines():
        try:
            if isinstance(json.loads(line), dict):
                return None
        except ValueError:
            continue
    return "no line of the input file is a JSON object; a batch file is JSONL"
