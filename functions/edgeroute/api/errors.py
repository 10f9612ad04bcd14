"""Render every failure in OpenAI's error shape: a status, a message naming the field
and the fix, never a traceback; what only the server may know goes to its log."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from edgeroute.errors import (
    EdgerouteError,
    HTTPStatusError,
    InternalError,
    MethodNotAllowed,
    PayloadTooLarge,
    UnknownRoute,
)
from edgeroute.wire.validation import validation_error

log = logging.getLogger("edgeroute.api")


def error_response(error: EdgerouteError, request_id: str | None = None) -> JSONResponse:
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return JSONResponse(error.body(), status_code=error.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EdgerouteError)
    async def _edgeroute(request: Request, exc: EdgerouteError) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        exc.log_detail(request_id)
        return error_response(exc, request_id)

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
        return error_response(InternalError.logged(request_id), request_id)


def _http_error(request: Request, exc: HTTPException) -> EdgerouteError:
    """The framework's own HTTP failures (no route, wrong method, body too large ...)."""
    if exc.status_code == 404:
        return UnknownRoute(
            f"No route {request.method} {request.url.path}. The OpenAI-compatible routes "
            "live under /v1 (chat/completions, completions, embeddings, moderations, models).",
        )
    if exc.status_code == 413:
        return PayloadTooLarge(
            "The request body is too large. Send fewer or shorter inputs, or split the "
            "work into several requests.",
        )
    if exc.status_code == 405:
        return MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
    return HTTPStatusError(exc.status_code, str(exc.detail))
