"""Render every failure in OpenAI's error shape: a status, a message naming the field
and the fix, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from edgeroute.errors import (
    EdgerouteError,
    HTTPStatusError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    UnknownRoute,
)

log = logging.getLogger("edgeroute.api")


def error_response(error: EdgerouteError, request_id: str | None = None) -> JSONResponse:
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return JSONResponse(error.body(), status_code=error.status_code, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p != "body"]
    # Drop pydantic's union-branch labels (e.g. 'str', 'list[...]') that mean nothing to a user.
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"}):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text or "body"


def _most_telling(errors: list[Any]) -> dict[str, Any]:
    """One error to report. A union field (``input: str | list[str]``) fails once per
    branch; the deepest complaint that is not a plain type mismatch says the most."""
    if not errors:
        return {"loc": ("body",), "msg": "invalid", "type": ""}
    field = tuple(p for p in errors[0].get("loc", ()) if p != "body")[:1]
    same = [e for e in errors if tuple(p for p in e.get("loc", ()) if p != "body")[:1] == field]

    def weight(error: dict[str, Any]) -> tuple[int, bool]:
        kind = str(error.get("type", ""))
        return len(error.get("loc", ())), not (kind.endswith("_type") or kind.endswith("_parsing"))

    return max(same, key=weight)


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    errors = list(exc.errors())
    first = _most_telling(errors)
    kind = first.get("type", "")
    field = _field(tuple(first.get("loc", ())))
    if kind == "json_invalid":
        return InvalidRequest(
            "The request body is not valid JSON. Send a JSON object with "
            "'Content-Type: application/json'.",
            code="invalid_json",
        )
    if kind == "missing":
        return InvalidRequest(
            f"Missing required parameter '{field}'. Add it to the request body.",
            param=field,
            code="missing_required_parameter",
        )
    if field == "body" or kind == "model_attributes_type":
        return InvalidRequest(
            "The request body must be a JSON object. See the OpenAI API reference for "
            "this route's fields.",
            param=None,
        )
    message = str(first.get("msg", "invalid value"))
    got = first.get("input")
    shown = repr(got)[:60] if got is not None and not isinstance(got, dict | list) else None
    extra = f" (got {shown})" if shown else ""
    more = f" {len(errors) - 1} more field(s) are invalid too." if len(errors) > 1 else ""
    return InvalidRequest(
        f"Invalid value for '{field}'{extra}: {message}. Fix '{field}' and retry.{more}",
        param=field,
        code="invalid_value",
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EdgerouteError)
    async def _edgeroute(request: Request, exc: EdgerouteError) -> JSONResponse:
        return error_response(exc, getattr(request.state, "request_id", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc), getattr(request.state, "request_id", None))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(_http_error(request, exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.exception("unhandled error in request %s", request_id)
        error = InternalError(
            f"edgeroute hit an internal error (request {request_id}). It has been logged; "
            "retry, and report the request id if it persists.",
        )
        return error_response(error, request_id)


def _http_error(request: Request, exc: HTTPException) -> EdgerouteError:
    """The framework's own HTTP failures (no route, wrong method, body too large ...)."""
    if exc.status_code == 404:
        return UnknownRoute(
            f"No route {request.method} {request.url.path}. The OpenAI-compatible routes "
            "live under /v1 (chat/completions, completions, embeddings, models).",
        )
    if exc.status_code == 413:
        return PayloadTooLarge(
            "The request body is too large. Send fewer or shorter inputs, or split the "
            "work into several requests.",
        )
    if exc.status_code == 405:
        return MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
    return HTTPStatusError(exc.status_code, str(exc.detail))
