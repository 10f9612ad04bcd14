"""The OpenAPI document says what the routes really answer: every error a route can give,
in OpenAI's error shape (one schema, ``OpenAIError``), and the model names this
deployment serves, so clients and schema-driven tests (schemathesis, in
tests/acceptance/test_schema.py) reach the models instead of guessing names.

FastAPI's own 422 ``HTTPValidationError`` is left out: request validation failures are
rendered as 400s in OpenAI's shape (``api/errors.py``), never as FastAPI's detail list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "insufficient_quota",
    "rate_limit_error",
    "server_error",
]


class ErrorDetail(BaseModel):
    message: str
    type: ErrorType
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """Every error body edgeroute sends (``errors.EdgerouteError.body``)."""

    error: ErrorDetail


_WHY = {
    400: "Invalid request: the message names the field and the fix.",
    401: "No API key, or one that is unknown, revoked or expired.",
    402: "The request would cost more than x-edgeroute-max-cost allows.",
    403: "The key may not do this (model, tenant, scope or network).",
    404: "No such model, or no such route.",
    405: "The method is not allowed on this route.",
    413: "The request body is too large.",
    429: "A limit of the key was reached (requests, tokens or budget).",
    500: "An unexpected error; the server log has it under the request id.",
    502: "The model's upstream answered with an error.",
    503: "The store, or every upstream for the model, is unavailable.",
    504: "No upstream answered in time.",
}

# What any authenticated route can answer, before its own work.
COMMON = (400, 401, 403, 405, 413, 429, 500, 503)
# What a route that calls a model adds.
UPSTREAM = (402, 404, 502, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status with OpenAI's error body."""
    return {
        status: {"model": OpenAIError, "description": _WHY[status]}
        for status in sorted({*COMMON, *statuses})
    }


# A 200 that may stream: the JSON body, or server-sent events when ``stream`` is true.
STREAMING_OK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer, or server-sent events when 'stream' is true.",
        "content": {
            "text/event-stream": {
                "schema": {  # one event: a chunk as JSON text, an error, or [DONE]
                    "type": "object",
                    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
                    "required": ["data"],
                }
            }
        },
    }
}

# Schemas whose "model" names a model of the registry (or a routing name).
_BODIES = ("ChatCompletionRequest", "CompletionRequest", "EmbeddingRequest", "ModerationRequest")


def install_openapi(app: FastAPI, model_names: Iterable[str]) -> None:
    """Build the document once, on first request: without FastAPI's 422s, with the
    served model names as the ``model`` fields' (and path's) enum."""
    names = sorted(set(model_names))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "model_id" and names:
                        parameter["schema"]["enum"] = names
        components = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        for body in _BODIES:
            model = components.get(body, {}).get("properties", {}).get("model")
            if model is not None and names:
                # An optional model (moderations) is anyOf [string, null]: name the strings.
                string = next(
                    (s for s in model.get("anyOf", []) if s.get("type") == "string"), model
                )
                string["enum"] = names
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
