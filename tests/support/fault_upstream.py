"""A small OpenAI-compatible server that misbehaves on request, for tests and benchmarks.

The ``model`` field of each request picks the behaviour, so one server can play a
healthy upstream and every kind of broken one at once. It speaks raw HTTP/1.1 on
asyncio (with keep-alive) so it can also reset connections and cut streams, which
a framework would not let it do.

Behaviours (the ``model`` name, optionally suffixed ``#anything`` to keep counters apart):
  instant      answer at once (buffered or streamed, usage included when asked)
  slow         wait SLOW_S (50 ms), then like instant: an upstream's fixed latency
  no-usage     like instant, but never reports usage
  status-500   HTTP 500 with an OpenAI error body
  status-503   HTTP 503 with Retry-After: 7
  status-429   HTTP 429 with Retry-After: 120 (a rate limit that names its wait)
  flaky        503 on the first request for this name, then like instant
  poison       HTTP 500 when the messages contain POISON (as a model may fail on one
               input it cannot take), otherwise like instant
  timeout      accept, then never answer
  reset        read the request, then reset the connection (RST)
  cut          stream two chunks, then close without finishing
  malformed    stream one chunk, then a line that is not JSON
  stream-error stream one chunk, then an SSE error event
  stall        stream one chunk, then go silent
  slow-stream  a chunk every 50 ms, 200 of them (for disconnect tests)
  slow         like instant, after 3 s (a long call a gateway may stop in the middle of)
  echo-400, echo-401  that status, with an error message quoting the Authorization
               header it got (as upstreams that repeat a rejected key do)

``GET /health`` answers ``health_status`` (200 unless a test sets it) and ``GET /metrics``
reports ``queue_depth`` as vLLM's ``vllm:num_requests_waiting``, for the health probe.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections import Counter
from typing import Any

from tests.support.served import Served

SLOW_S = 0.05


def _completion(model: str, chat: bool, text: str = "Hello from the instant upstream.") -> bytes:
    choice: dict[str, Any] = (
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        if chat
        else {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    )
    body = {
        "id": "cmpl-fault-1",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }
    return json.dumps(body).encode()


def _chunk(model: str, chat: bool, text: str, finish: str | None = None) -> bytes:
    choice: dict[str, Any] = (
        {"index": 0, "delta": {"content": text}, "finish_reason": finish}
        if chat
        else {"index": 0, "text": text, "finish_reason": finish}
    )
    body = {
        "id": "chunk-fault-1",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _usage_chunk(model: str) -> bytes:
    body = {
        "id": "chunk-fault-1",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def fault_model(name: str, url: str, behaviour: str, **extra: object) -> dict[str, object]:
    """A registry entry for a model this server plays: ``behaviour`` is its upstream
    name; ``extra`` fields override the defaults (short timeouts, no retries)."""
    model: dict[str, object] = {
        "name": name,
        "protocol": "openai",
        "endpoint": url,
        "upstream_model": behaviour,
        "tier": "medium",
        "capabilities": ["chat", "completions", "embeddings"],
        "context_window": 4096,
        "timeouts": {"connect": 1, "read": 1.5, "total": 4},
        "retries": 0,
    }
    model.update(extra)
    return model


class FaultUpstream(Served):
    """Runs on its own thread and event loop; ``url`` is its ``/v1`` base."""

    def __init__(self, port: int = 0) -> None:
        """``port`` 0: any free one; a given port plays an endpoint that comes back."""
        self.requests: Counter[str] = Counter()
        self.queue_depth = 0  # what /metrics reports as vLLM's waiting requests
        self.health_status = 200  # what GET /health answers
        self.disconnects: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault-upstream")
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault upstream did not start")
        return self

    def stop(self) -> None:
        async def _close() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def _start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(_start())
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b"{}"
                keep = await self._respond(path, json.loads(raw or b"{}"), writer, headers)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # stop(): end quietly, the loop is going away
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    async def _send(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, **extra: str
    ) -> None:
        reason = {200: "OK", 500: "Internal Server Error", 503: "Service Unavailable"}.get(
            status, "X"
        )
        head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(body)}\r\n"
        for name, value in extra.items():
            head += f"{name.replace('_', '-')}: {value}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()

    async def _respond(
        self,
        path: str,
        body: dict[str, Any],
        writer: asyncio.StreamWriter,
        headers: dict[str, str] | None = None,
    ) -> bool:
        if path.endswith("/metrics"):
            metric = "vllm:num_requests_waiting"
            text = f"# TYPE {metric} gauge\n{metric} {self.queue_depth}\n"
            await self._send(writer, 200, text.encode())
            return True
        if path.endswith("/health"):
            await self._send(writer, self.health_status, b"{}")
            return True
        name = str(body.get("model", "instant"))
        behaviour = name.split("#", 1)[0]
        self.requests[name] += 1
        self.bodies.append(body)
        chat = path.endswith("/chat/completions")
        stream = bool(body.get("stream"))
        if path.endswith("/embeddings"):
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            data = [
                {"object": "embedding", "index": i, "embedding": [0.5, 0.5]} for i in range(count)
            ]
            payload = {
                "object": "list",
                "data": data,
                "model": name,
                "usage": {"prompt_tokens": 3 * count, "total_tokens": 3 * count},
            }
            await self._send(writer, 200, json.dumps(payload).encode())
            return True
        if behaviour == "slow":  # a fixed latency, then an instant answer (batch, bench)
            await asyncio.sleep(SLOW_S)
            behaviour = "instant"
        if behaviour == "flaky":
            behaviour = "status-503" if self.requests[name] == 1 else "instant"
        if behaviour == "poison":
            poisoned = "POISON" in json.dumps(body.get("messages"))
            behaviour = "status-500" if poisoned else "instant"
        if behaviour == "status-500":
            error = {
                "error": {"message": "boom", "type": "server_error", "code": None, "param": None}
            }
            await self._send(writer, 500, json.dumps(error).encode())
            return True
        if behaviour in ("echo-400", "echo-401"):
            said = (headers or {}).get("authorization", "(none)")
            message = f"Incorrect API key provided: {said}. Check the key you sent."
            error = {"error": {"message": message, "type": "invalid_request_error"}}
            await self._send(writer, int(behaviour[-3:]), json.dumps(error).encode())
            return True
        if behaviour == "status-429":
            error = {"error": {"message": "rate limited", "type": "rate_limit_error"}}
            await self._send(writer, 429, json.dumps(error).encode(), retry_after="120")
            return True
        if behaviour == "status-503":
            error = {"error": {"message": "overloaded", "type": "server_error"}}
            await self._send(writer, 503, json.dumps(error).encode(), retry_after="7")
            return True
        if behaviour == "timeout":
            await asyncio.sleep(3600)
            return False
        if behaviour == "slow":
            await asyncio.sleep(3)
        if behaviour == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if not stream:
            if behaviour == "no-usage":
                data = json.loads(_completion(name, chat))
                del data["usage"]
                await self._send(writer, 200, json.dumps(data).encode())
            else:
                await self._send(writer, 200, _completion(name, chat))
            return True
        return await self._stream(writer, name, behaviour, chat, body)

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        name: str,
        behaviour: str,
        chat: bool,
        body: dict[str, Any],
    ) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )

        async def emit(data: bytes) -> None:
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()

        try:
            if behaviour == "slow-stream":
                for i in range(200):
                    await emit(_chunk(name, chat, f"tok{i} "))
                    await asyncio.sleep(0.05)
                await emit(_chunk(name, chat, "", "stop"))
            else:
                await emit(_chunk(name, chat, "Hello"))
                if behaviour == "cut":
                    await emit(_chunk(name, chat, " there"))
                    writer.transport.abort()
                    return False
                if behaviour == "malformed":
                    await emit(b"data: {this is not json\n\n")
                    await emit(b"data: [DONE]\n\n")
                    writer.write(b"0\r\n\r\n")
                    return True
                if behaviour == "stream-error":
                    await emit(b'data: {"error": {"message": "model crashed", "code": 500}}\n\n')
                    writer.write(b"0\r\n\r\n")
                    return True
                if behaviour == "stall":
                    await asyncio.sleep(3600)
                    return False
                await emit(_chunk(name, chat, " world", "stop"))
            if behaviour != "no-usage" and (body.get("stream_options") or {}).get("include_usage"):
                await emit(_usage_chunk(name))
            await emit(b"data: [DONE]\n\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except (ConnectionError, RuntimeError):
            self.disconnects[name] += 1
            return False


def main() -> None:
    """Run standalone (for benchmarks): ``python -m tests.support.fault_upstream``."""
    import signal

    server = FaultUpstream().start()
    print(f"fault upstream listening on {server.url}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


if __name__ == "__main__":
    import signal as _signal

    _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGTERM, _signal.SIGINT})
    main()
