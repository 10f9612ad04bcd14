"""Render every failure in OpenAI's error shape: a status, a message naming the field
and the fix, never a traceback; what only the server may know goes to its log."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgeroute.api.responses import AnyTextJSONResponse
from edgeroute.errors import (
    EdgerouteError,
    HTTPStatusError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    UnknownRoute,
)
from edgeroute.wire.validation import validation_error

log = logging.getLogger("edgeroute.api")


def error_response(error: EdgerouteError, request_id: str | None = None) -> AnyTextJSONResponse:
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return AnyTextJSONResponse(error.body(), status_code=error.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EdgerouteError)
    async def _edgeroute(request: Request, exc: EdgerouteError) -> AnyTextJSONResponse:
        request_id = getattr(request.state, "request_id", None)
        exc.log_detail(request_id)
        return error_response(exc, request_id)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> AnyTextJSONResponse:
        return error_response(validation_error(exc), getattr(request.state, "request_id", None))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> AnyTextJSONResponse:
        return error_response(_http_error(request, exc))

    app.add_middleware(InternalErrors)


class InternalErrors:
    """Answer an unexpected exception with a 500 in OpenAI's shape, and keep the
    connection. (Starlette's catch-all handler answers and then re-raises, and uvicorn
    closes the keep-alive connection on that, resetting the client's next request.)

    An answer already complete (a background task failed after it) stays as it is; one
    cut off halfway is re-raised, so the server drops the connection and the client
    sees the cut."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            started = started or message["type"] == "http.response.start"
            finished = message["type"] == "http.response.body" and not message.get("more_body")
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            request_id = scope.get("state", {}).get("request_id")
            log.exception("unhandled error in request %s", request_id)
            if started and not finished:
                raise
            if not started:
                error = InternalError.logged(request_id)
                await error_response(error, request_id)(scope, receive, send)


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
    if exc.status_code == 400:  # FastAPI could not read the body as JSON text
        if isinstance(exc.__cause__, UnicodeDecodeError):
            return InvalidRequest(
                f"The request body is not valid UTF-8 (byte {exc.__cause__.start}). "
                "Send the JSON body as valid UTF-8.",
                code="invalid_utf8",
            )
        return InvalidRequest(  # e.g. nested deeper than the parser goes
            "The request body could not be read as JSON. Send one JSON object, as valid "
            "UTF-8, nested no more than a few hundred levels deep.",
            code="invalid_json",
        )
    if exc.status_code == 405:
        return MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
    return HTTPStatusError(exc.status_code, str(exc.detail))
