"""The floor: a bare FastAPI + aiohttp pass-through, what this stack costs with no auth,
quota, cache or routing. ``python -m bench.compare.floor_proxy PORT UPSTREAM_URL``.

Bodies go through as bytes, never parsed; a streamed answer is relayed as it arrives.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

PASSED_HEADERS = ("content-type",)


def create_app(upstream: str) -> FastAPI:
    session: dict[str, aiohttp.ClientSession] = {}

    async def client() -> aiohttp.ClientSession:
        if "s" not in session:
            connector = aiohttp.TCPConnector(limit=512)
            session["s"] = aiohttp.ClientSession(upstream, connector=connector)
        return session["s"]

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.body()
        headers = {"content-type": "application/json"}
        upstream_response = await (await client()).post(
            "v1/chat/completions", data=body, headers=headers
        )
        kept = {k: v for k in PASSED_HEADERS if (v := upstream_response.headers.get(k))}
        if upstream_response.content_type != "text/event-stream":
            content = await upstream_response.read()
            upstream_response.release()
            return Response(content, upstream_response.status, kept)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream_response.content.iter_any():
                    yield chunk
            finally:
                upstream_response.release()

        return StreamingResponse(relay(), upstream_response.status, kept)

    return app


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    base = upstream.removesuffix("/").removesuffix("/v1") + "/"
    uvicorn.run(create_app(base), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
