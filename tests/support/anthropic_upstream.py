"""A small Anthropic-compatible upstream (``POST /v1/messages``) for the ``anthropic``
protocol adapter's tests: uvicorn on its own thread, answering as Anthropic does.

The request's ``model`` picks the answer:
  text        a text answer ("Bonjour from Messages"), end_turn
  tool        a tool_use of ``get_weather`` with {"city": "Paris"}, stop_reason tool_use
  stop-seq    "Counting 1 2" then the stop sequence "3" (stop_reason stop_sequence)
  overloaded  HTTP 529 with Anthropic's overloaded_error body
  invalid     HTTP 400 with an invalid_request_error body
  cut         (streams) message_start and one delta, then the connection closes
Every request's JSON body and headers are kept (``requests``), newest last.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.support.gateway import free_port
from tests.support.served import Served

USAGE = {"input_tokens": 11, "output_tokens": 6}


def _message(model: str) -> dict[str, Any]:
    content: list[dict[str, Any]]
    stop, sequence = "end_turn", None
    if model == "tool":
        content = [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ]
        stop = "tool_use"
    elif model == "stop-seq":
        content = [{"type": "text", "text": "Counting 1 2 "}]
        stop, sequence = "stop_sequence", "3"
    else:
        content = [{"type": "text", "text": "Bonjour from Messages"}]
    return {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": sequence,
        "usage": USAGE,
    }


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _events(model: str) -> Iterator[bytes]:
    message = _message(model)
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {"input_tokens": USAGE["input_tokens"], "output_tokens": 1}
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    for index, block in enumerate(message["content"]):
        empty = {**block, "text": ""} if block["type"] == "text" else {**block, "input": {}}
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": empty},
        )
        if block["type"] == "text":
            for word in block["text"].split(" "):
                delta = {"type": "text_delta", "text": word + " "}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
                if model == "cut":
                    return
        else:
            text = json.dumps(block["input"])
            for piece in (text[:5], text[5:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": USAGE["output_tokens"]}
    yield _sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
    yield _sse("message_stop", {"type": "message_stop"})


def _error(status: int, kind: str, message: str) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status)


class AnthropicUpstream(Served):
    """Runs on its own thread; ``url`` is its ``/v1`` base."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        app = FastAPI()

        @app.post("/v1/messages")
        async def messages(request: Request) -> Response:
            body = await request.json()
            self.requests.append((body, dict(request.headers)))
            model = str(body.get("model"))
            if model == "overloaded":
                return _error(529, "overloaded_error", "Overloaded")
            if model == "invalid":
                return _error(400, "invalid_request_error", "messages: roles must alternate")
            if body.get("stream"):
                return StreamingResponse(_events(model), media_type="text/event-stream")
            return JSONResponse(_message(model))

        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> AnthropicUpstream:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("Anthropic-compatible upstream did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
