"""Render every failure in OpenAI's error shape: a status, a message naming the field
and the fix, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from edgeroute.errors import EdgerouteError, PayloadTooLarge
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
        return error_response(exc, getattr(request.state, "request_id", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc), getattr(request.state, "request_id", None))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error = EdgerouteError(
                f"No route {request.method} {request.url.path}. The OpenAI-compatible routes "
                "live under /v1 (chat/completions, completions, embeddings, models).",
                code="unknown_route",
            )
            error.status_code, error.error_type = 404, "invalid_request_error"
        elif exc.status_code == 413:
            error = PayloadTooLarge(
                "The request body is too large. Send fewer or shorter inputs, or split the "
                "work into several requests.",
            )
        elif exc.status_code == 405:
            error = EdgerouteError(
                f"{request.method} is not allowed on {request.url.path}.",
                code="method_not_allowed",
            )
            error.status_code, error.error_type = 405, "invalid_request_error"
        else:
            error = EdgerouteError(str(exc.detail))
            error.status_code = exc.status_code
        return error_response(error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.exception("unhandled error in request %s", request_id)
        error = EdgerouteError(
            f"edgeroute hit an internal error (request {request_id}). It has been logged; "
            "retry, and report the request id if it persists.",
            code="internal_error",
        )
        return error_response(error, request_id)
