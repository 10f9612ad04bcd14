"""A Lambda Runtime API emulator that the real ``awslambdaric`` can poll.

Lambda's Python runtime is a loop in ``awslambdaric`` that asks the Runtime API
("RAPID") for the next event, calls the handler and posts the result back. Serving
that API on 127.0.0.1 lets the unmodified runtime client run a handler locally.

What awslambdaric 4.2.2 actually sends (observed on the wire, not assumed):

* ``/next``, ``/response`` and ``/error`` go through its native ``runtime_client``
  (aws-lambda-cpp 0.2.6 over libcurl) on one keep-alive connection. Bodies carry a
  ``content-length``; no chunked encoding, no ``Expect: 100-continue`` and no
  streaming response mode. Header names arrive in lower case.
* ``/error`` from the native client carries ``lambda-runtime-function-xray-error-cause``
  (up to 1 MiB) but **no** ``Lambda-Runtime-Function-Error-Type`` header, so the error
  type is taken from the JSON body.
* ``/init/error`` goes through Python's ``http.client`` on a fresh connection and does
  carry ``Lambda-Runtime-Function-Error-Type``.

The server is asyncio with its own small HTTP/1.1 parser rather than ``http.server``:
``http.client.parse_headers`` rejects header lines over 64 KiB, and the X-Ray cause of a
deep traceback (a RecursionError) is larger than that.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

API_PREFIX = "/2018-06-01/runtime"
# Lambda's synchronous response limit; RAPID answers 413 above it and the invoke fails
# with Function.ResponseSizeTooLarge. The figure is the one Lambda's message quotes.
MAX_RESPONSE_BYTES = 6_291_556
# Large enough for a 1 MiB X-Ray header plus a 6 MB body in one StreamReader buffer.
_READ_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class Invocation:
    """One event waiting to be handed to the runtime by ``/next``."""

    request_id: str
    body: bytes
    timeout_s: float
    function_arn: str
    trace_id: str = field(default_factory=lambda: new_trace_id())
    client_context: str | None = None
    cognito_identity: str | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class Polled:
    """The runtime called ``/next``: init is over (first poll) or the last call is done."""

    at: float


@dataclass(frozen=True)
class Dispatched:
    """An event left the queue; the Lambda deadline runs from here."""

    request_id: str
    at: float
    deadline_ms: int


@dataclass(frozen=True)
class Posted:
    """The runtime posted a response, an invocation error or an init error."""

    kind: Literal["response", "error", "init_error"]
    request_id: str | None
    body: bytes
    headers: dict[str, str]
    at: float

    def error_shape(self) -> dict[str, object]:
        """The body as Lambda's error object, tolerating a body that is not JSON."""
        try:
            parsed = json.loads(self.body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        return {
            "errorMessage": self.body.decode("utf-8", "replace"),
            "errorType": self.headers.get("lambda-runtime-function-error-type", "Unhandled"),
        }


RuntimeEvent = Polled | Dispatched | Posted
EventSink = Callable[[RuntimeEvent], None]


def new_request_id() -> str:
    """A UUID4-looking id, as Lambda uses."""
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def new_trace_id() -> str:
    """An X-Ray trace header in the format Lambda passes to the runtime."""
    return (
        f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
        f"Parent={secrets.token_hex(8)};Sampled=0"
    )


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RuntimeApiEmulator:
    """Serves the Runtime API on 127.0.0.1 from a background thread.

    Events for the caller (polls, dispatches, posts) go to ``sink`` from the server
    thread; use one emulator per runtime process so nothing stale crosses over.
    """

    def __init__(self, sink: EventSink, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sink = sink
        self._host = host
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[Invocation] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatched: set[str] = set()
        self._answered: set[str] = set()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``host:port`` for ``AWS_LAMBDA_RUNTIME_API``."""
        return f"{self._host}:{self._port}"

    def start(self) -> RuntimeApiEmulator:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._listen())
            except BaseException as exc:  # surfaced to start()'s caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="lambda-runtime-api", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def submit(self, invocation: Invocation) -> None:
        """Queue an event; a pending or later ``/next`` returns it."""
        queue = self._queue
        if queue is None:
            raise RuntimeError("emulator not started")
        self._loop.call_soon_threadsafe(queue.put_nowait, invocation)

    def close(self) -> None:
        if self._thread is None:
            return
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> RuntimeApiEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _listen(self) -> None:
        self._queue = asyncio.Queue()
        self._server = await asyncio.start_server(
            self._on_connection, self._host, self._port, limit=_READ_LIMIT
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # A /next poll of a killed runtime stays parked on the queue: cancel it.
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Without this, Nagle holds the body segment until the client's delayed
            # ACK (40 ms on Linux) and every runtime round trip costs ~90 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request = await _read_request(reader, writer)
                if request is None:
                    break
                status, headers, body = await self._route(request)
                writer.write(_render(status, headers, body))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the runtime went away (killed or exited); nothing to answer
        except asyncio.CancelledError:
            pass  # shutdown
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _route(self, req: _Request) -> tuple[int, dict[str, str], bytes]:
        path = req.path.split("?", 1)[0]
        if not path.startswith(API_PREFIX + "/"):
            return _json(404, {"errorMessage": "Not found", "errorType": "NotFound"})
        rest = path[len(API_PREFIX) + 1 :]
        if req.method == "GET" and rest == "invocation/next":
            return await self._next()
        if req.method == "POST" and rest == "init/error":
            self._emit_post("init_error", None, req)
            return _accepted()
        if req.method == "GET" and rest == "restore/next":
            return 200, {}, b""  # SnapStart hook: nothing to restore locally
        if req.method == "POST" and rest == "restore/error":
            self._emit_post("init_error", None, req)
            return _accepted()
        parts = rest.split("/")
        if req.method == "POST" and len(parts) == 3 and parts[0] == "invocation":
            request_id, action = parts[1], parts[2]
            if action in ("response", "error"):
                return self._result(request_id, action, req)
        return _json(404, {"errorMessage": "Not found", "errorType": "NotFound"})

    async def _next(self) -> tuple[int, dict[str, str], bytes]:
        assert self._queue is not None
        self._sink(Polled(time.perf_counter()))
        inv = await self._queue.get()
        # Lambda's deadline starts when the event is handed over, not when it was queued.
        deadline_ms = int(time.time() * 1000 + inv.timeout_s * 1000)
        headers = {
            "Content-Type": inv.content_type,
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        }
        if inv.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = inv.client_context
        if inv.cognito_identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = inv.cognito_identity
        self._dispatched.add(inv.request_id)
        self._sink(Dispatched(inv.request_id, time.perf_counter(), deadline_ms))
        return 200, headers, inv.body

    def _result(
        self, request_id: str, action: str, req: _Request
    ) -> tuple[int, dict[str, str], bytes]:
        if request_id not in self._dispatched:
            return _json(
                400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}
            )
        if request_id in self._answered:
            return _json(
                400,
                {"errorMessage": "Invalid state transition", "errorType": "InvalidStateTransition"},
            )
        self._answered.add(request_id)
        if action == "response" and len(req.body) > MAX_RESPONSE_BYTES:
            # The invoke fails for the caller; the runtime gets a 413 and (as on Lambda)
            # awslambdaric raises, ending the process.
            message = (
                f"Response payload size ({len(req.body)} bytes) exceeded maximum allowed "
                f"payload size ({MAX_RESPONSE_BYTES} bytes)."
            )
            error = {"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}
            too_large = _Request(req.method, req.path, req.headers, json.dumps(error).encode())
            self._emit_post("error", request_id, too_large)
            return _json(413, error)
        self._emit_post("response" if action == "response" else "error", request_id, req)
        return _accepted()

    def _emit_post(
        self,
        kind: Literal["response", "error", "init_error"],
        request_id: str | None,
        req: _Request,
    ) -> None:
        self._sink(Posted(kind, request_id, req.body, req.headers, time.perf_counter()))


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # clean close between requests
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = _parse_header_lines(lines[1:])
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, headers)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return _Request(method, target, headers, body)


async def _read_chunked(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    # Not used by awslambdaric 4.2.2; streaming-mode runtimes send chunks and report
    # errors in trailers, which are merged into the headers here.
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    trailer = await reader.readuntil(b"\r\n")
    trailer_lines: list[str] = []
    while trailer != b"\r\n":
        trailer_lines.append(trailer.decode("latin-1").rstrip("\r\n"))
        trailer = await reader.readuntil(b"\r\n")
    headers.update(_parse_header_lines(trailer_lines))
    return b"".join(chunks)


def _parse_header_lines(lines: list[str]) -> dict[str, str]:
    # Lower-cased names: curl sends "content-type", http.client "Content-Length".
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def _render(status: int, headers: dict[str, str], body: bytes) -> bytes:
    reason = {
        200: "OK",
        202: "Accepted",
        400: "Bad Request",
        404: "Not Found",
        413: "Payload Too Large",
    }.get(status, "")
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    # One buffer, one send: headers and body never straddle two segments.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _json(status: int, obj: object) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def _accepted() -> tuple[int, dict[str, str], bytes]:
    return _json(202, {"status": "OK"})
