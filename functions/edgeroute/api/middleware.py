"""Pure ASGI middleware (Starlette's BaseHTTPMiddleware costs too much per request)."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgeroute.wire.anthropic.errors import ANTHROPIC_PATHS, error_event

_JSON = b"application/json"
_NOT_JSON = (b"application/x-www-form-urlencoded", b"text/plain")


class RequestBodies:
    """One walk over the request's headers for both body rules: refuse bodies over
    ``max_bytes`` with a 413 before they are parsed, and read bodies as JSON whatever
    Content-Type says, as OpenAI's API does (`curl -d` sends form-urlencoded by default,
    and the body is JSON all the same). Two middlewares walked the headers for these."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, path: str) -> bytes:
        mib = self.max_bytes / (1024 * 1024)
        message = (
            f"The request body is larger than {mib:g} MiB. Send fewer or shorter inputs, "
            "or split the work into several requests."
        )
        if path.startswith(ANTHROPIC_PATHS):  # Anthropic's routes answer in its shape
            return json.dumps(error_event("request_too_large", message)).encode()
        error = {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "payload_too_large",
        }
        return json.dumps({"error": error}).encode()

    async def _refuse(self, send: Send, path: str) -> None:
        body = self._too_large(path)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await self._refuse(send, scope["path"])
                    return
            elif name == b"content-type" and declared is None:
                declared = value
        if scope["method"] == "POST" and (
            declared is None or declared.split(b";")[0].strip().lower() in _NOT_JSON
        ):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", _JSON)]}
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send, scope["path"])


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI re-raises HTTPExceptions from body parsing as they
    are (anything else becomes a 400), so a chunked body over the limit is a 413 too."""

    def __init__(self) -> None:
        super().__init__(status_code=413)
