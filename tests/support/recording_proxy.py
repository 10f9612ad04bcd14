"""A pass-through in front of a real upstream that keeps every request body it forwards,
so a test can check what the upstream was sent (e.g. that masked values never were).

Runs uvicorn on its own thread; ``url`` is its ``/v1`` base. Answers, streamed or not,
are relayed as the upstream sends them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.gateway import free_port
from tests.support.served import Served


class RecordingProxy(Served):
    def __init__(self, upstream_v1: str) -> None:
        self.upstream = upstream_v1.rstrip("/")
        self.bodies: list[dict[str, Any]] = []
        self.port = free_port()
        app = Starlette(routes=[Route("/v1/{path:path}", self._forward, methods=["POST", "GET"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="recorder")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> RecordingProxy:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("recording proxy did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def sent(self) -> str:
        """Every body forwarded so far, as one JSON text."""
        return json.dumps(self.bodies, ensure_ascii=False)

    async def _forward(self, request: Request) -> Response:
        raw = await request.body()
        if raw:
            self.bodies.append(json.loads(raw))
        client = httpx.AsyncClient(timeout=60)
        upstream = client.build_request(
            request.method,
            f"{self.upstream}/{request.path_params['path']}",
            content=raw,
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        answer = await client.send(upstream, stream=True)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for part in answer.aiter_raw():
                    yield part
            finally:
                await answer.aclose()
                await client.aclose()

        media = answer.headers.get("content-type", "application/json")
        return StreamingResponse(relay(), status_code=answer.status_code, media_type=media)
