"""Adapter for SageMaker real-time endpoints, and the boto3 plumbing both AWS adapters share.

Registry fields read:

- ``upstream_model`` (``wire_name``): the SageMaker *endpoint name*.
- ``endpoint`` (optional): an ``https://runtime.sagemaker.<region>.amazonaws.com`` URL, or
  a VPC endpoint URL; the region is read from its host and the URL is used as boto3's
  ``endpoint_url``. Left out, boto3 uses ``AWS_REGION``/``AWS_DEFAULT_REGION`` (on Lambda,
  the function's own region), which is the usual setup.
- ``timeouts.connect`` and ``timeouts.read``: botocore's connect and read timeouts.
- ``credential`` is not used: boto3's credential chain (the Lambda role) signs requests.

The container must speak the OpenAI API (LMI, vLLM, TGI's Messages API), which is the
common case today: the OpenAI JSON body is sent as is with ``ContentType:
application/json``, minus ``model`` (an endpoint serves one model, and vLLM rejects a
name it does not serve). Streams come back as ``PayloadPart`` events whose bytes
concatenate into SSE lines, split anywhere, even inside a UTF-8 character.

boto3 is synchronous, so calls run in worker threads; a stream is read by its own thread
into a bounded queue, and closing the async generator closes the botocore stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from edgeroute.errors import (
    EdgerouteError,
    InvalidRequest,
    PayloadTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.registry import ModelSpec
from edgeroute.upstreams.base import Json, Kind

T = TypeVar("T")
SERVICE = "sagemaker-runtime"
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")

# ---- boto3 plumbing shared with bedrock.py ------------------------------------------------

_clients: dict[tuple[str, str | None, str | None, float, float], Any] = {}
_clients_lock = threading.Lock()
_session: Any = None


def region_for(model: ModelSpec) -> str | None:
    """The region named in the endpoint URL's host, else the environment's (None: boto3's)."""
    host = (urlsplit(model.endpoint).hostname or "") if model.endpoint else ""
    for label in host.split("."):
        if _REGION.fullmatch(label):
            return label
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def aws_client(service: str, model: ModelSpec) -> Any:
    """The process's client for (service, region, timeouts); blocking, so call it in a thread."""
    region = region_for(model)
    timeouts = model.timeouts
    key = (service, region, model.endpoint or None, timeouts.connect, timeouts.read)
    client = _clients.get(key)
    if client is not None:
        return client
    import boto3  # imported here: only deployments with AWS upstreams pay its import time
    from botocore.config import Config

    global _session
    with _clients_lock:  # boto3 sessions are not safe to create clients from concurrently
        client = _clients.get(key)
        if client is None:
            if _session is None:
                _session = boto3.session.Session()
            config = Config(
                connect_timeout=timeouts.connect,
                read_timeout=timeouts.read,
                # One attempt: the gateway retries and falls back itself, under one deadline.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=int(os.environ.get("EDGEROUTE_MAX_CONNECTIONS", "512")),
            )
            client = _session.client(
                service, region_name=region, endpoint_url=model.endpoint or None, config=config
            )
            _clients[key] = client
    return client


async def open_in_thread(call: Callable[[], T], close: Callable[[T], object]) -> T:
    """Run a blocking call that opens a stream; if the caller gives up first (a timeout, a
    client gone), close what the call opens, or its connection would stay checked out."""
    task = asyncio.ensure_future(asyncio.to_thread(call))

    def abandoned(done: asyncio.Future[T]) -> None:
        if not done.cancelled() and done.exception() is None:
            with contextlib.suppress(Exception):
                close(done.result())

    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(abandoned)
        raise


_EVENT, _FAILED, _END = 0, 1, 2


async def iterate_in_thread(
    events: Iterable[T], close: Callable[[], object], read_ahead: int = 64
) -> AsyncGenerator[T, None]:
    """Iterate a blocking event stream in a worker thread through a bounded queue.

    Closing this generator (the client went away) closes the stream, which unblocks a
    worker waiting on the socket; a worker waiting on a full queue sees the stop flag.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue(read_ahead)
    stopped = threading.Event()

    def put(item: tuple[int, Any]) -> bool:
        try:
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while True:
                try:
                    future.result(timeout=0.5)
                    return True
                except TimeoutError:
                    if stopped.is_set():
                        future.cancel()
                        return False
        except Exception:  # the loop closed, or the put was cancelled: nobody is listening
            return False

    def work() -> None:
        try:
            for event in events:
                if stopped.is_set() or not put((_EVENT, event)):
                    return
        except BaseException as exc:
            if not stopped.is_set():  # after close() the read fails by design
                put((_FAILED, exc))
            return
        put((_END, None))

    threading.Thread(target=work, name="edgeroute-aws-stream", daemon=True).start()
    try:
        while True:
            tag, value = await queue.get()
            if tag == _END:
                return
            if tag == _FAILED:
                raise value
            yield value
    finally:
        stopped.set()
        with contextlib.suppress(Exception):
            close()
        while not queue.empty():  # make room for a put in flight, so the worker can exit
            queue.get_nowait()


def error_fields(exc: BaseException) -> tuple[str, str, dict[str, Any]]:
    """(code, message, whole response) of a botocore ClientError; ("", "", {}) otherwise."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return "", "", {}
    error = exc.response.get("Error") or {}
    code = str(error.get("Code") or "")
    # Errors inside an event stream carry the union member's name: throttlingException.
    code = code[:1].upper() + code[1:]
    return code, str(error.get("Message") or ""), dict(exc.response)


# Error codes by what they mean for the caller; services spell the same thing differently.
_THROTTLED = re.compile(r"Throttl|TooManyRequests|QuotaExceeded")
_DENIED = re.compile(r"AccessDenied|UnrecognizedClient|InvalidSignature|ExpiredToken|ClientToken")


def map_aws_error(exc: Exception, model: ModelSpec, where: str, actions: str) -> EdgerouteError:
    """The caller-visible error for what both AWS services share: throttling, IAM, network."""
    import urllib3.exceptions
    from botocore import exceptions as bx

    code, message, _ = error_fields(exc)
    t = model.timeouts
    if _THROTTLED.search(code):
        return UpstreamUnavailable(
            f"{where} is throttling edgeroute ({code}: {message}). Retry after 5 s, call "
            "another model, or raise the account's quota.",
            headers={"Retry-After": "5"},
        )
    if code.startswith("ServiceUnavailable") or code == "ModelNotReadyException":
        wait = "30" if code == "ModelNotReadyException" else "5"
        return UpstreamUnavailable(
            f"{where} is not ready to serve ({code}: {message}). Retry after {wait} s or "
            "call another model.",
            headers={"Retry-After": wait},
        )
    if code.startswith("Internal"):
        return UpstreamError(f"{where} failed inside AWS ({code}: {message}). Retry the request.")
    if _DENIED.search(code) or isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return UpstreamError(
            f"{where} refused edgeroute's AWS credentials ({code or type(exc).__name__}: "
            f"{message or exc}). An operator must grant the gateway's IAM role {actions}.",
            code="upstream_auth_failed",
        )
    if isinstance(exc, bx.NoRegionError):
        return UpstreamError(
            f"No AWS region is known for model '{model.name}'. Set AWS_REGION, or give the "
            "model an 'endpoint' URL that names its region."
        )
    if isinstance(exc, bx.ReadTimeoutError | urllib3.exceptions.ReadTimeoutError):
        return UpstreamTimeout(
            f"{where} sent nothing for {t.read} s (the model's read timeout). Retry later "
            "or raise 'timeouts.read'.",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, bx.ConnectTimeoutError):
        return UpstreamTimeout(
            f"{where} did not accept a connection within {t.connect} s. Retry later or "
            "call another model.",
            headers={"Retry-After": "5"},
        )
    cut = (bx.ConnectionClosedError, bx.ResponseStreamingError, urllib3.exceptions.ProtocolError)
    if isinstance(exc, cut):
        return UpstreamError(
            f"{where} broke off its response ({exc}). Retry the request.",
            code="upstream_truncated",
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionError):
        return UpstreamUnavailable(
            f"{where} is unreachable ({exc}). Check the model's region and 'endpoint', or "
            "call another model.",
            headers={"Retry-After": "5"},
        )
    if code:
        return UpstreamError(f"{where} failed ({code}: {message}).")
    return UpstreamError(f"{where} failed: {type(exc).__name__}: {exc}")


# ---- SageMaker ----------------------------------------------------------------------------


def _where(model: ModelSpec) -> str:
    region = region_for(model) or "the default region"
    return f"SageMaker endpoint '{model.wire_name}' (model '{model.name}', {region})"


def _map_error(exc: Exception, model: ModelSpec) -> EdgerouteError:
    code, message, response = error_fields(exc)
    where = _where(model)
    if code == "ModelError":
        # The container answered with an error; its own status says whose fault it was.
        status = response.get("OriginalStatusCode")
        original = str(response.get("OriginalMessage") or message)[:500]
        logs = response.get("LogStreamArn")
        if status == 413 or (status == 400 and "context" in original.lower()):
            return PayloadTooLarge(
                f"The request does not fit {where} ({original}). Shorten 'messages' or "
                "lower 'max_tokens'.",
                param="messages",
                code="context_length_exceeded",
            )
        if status in (400, 422):
            return InvalidRequest(f"{where} rejected the request: {original}")
        if status in (429, 503):
            return UpstreamUnavailable(
                f"{where} is overloaded ({status}: {original}). Retry after 5 s or call "
                "another model.",
                headers={"Retry-After": "5"},
            )
        return UpstreamError(
            f"{where}'s container failed with status {status}: {original}"
            + (f" (logs: {logs})" if logs else "")
        )
    if code == "ValidationError":
        lowered = message.lower()
        if "not found" in lowered:
            return UpstreamError(
                f"{where} does not exist ({message}). An operator must fix the model's "
                "'upstream_model' (the endpoint name) or its region in the registry."
            )
        if "too large" in lowered or "exceed" in lowered:
            return PayloadTooLarge(f"{where} refused the request body: {message}")
        return InvalidRequest(f"{where} rejected the request: {message}")
    if code in ("ModelStreamError", "InternalStreamFailure"):
        detail = response.get("ErrorCode") or code
        return UpstreamError(
            f"{where} failed mid-stream ({detail}: {message}). The response is incomplete; "
            "retry it.",
            code="upstream_stream_error",
        )
    return map_aws_error(exc, model, where, "sagemaker:InvokeEndpoint(WithResponseStream)")


def request_body(payload: Json) -> bytes:
    return json.dumps({k: v for k, v in payload.items() if k != "model"}).encode()


class SSELines:
    """Reassembles SSE ``data:`` lines from PayloadParts, which may split anywhere."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        # Split bytes, not text: a part may end inside a multi-byte UTF-8 character.
        *complete, self._buffer = (self._buffer + data).split(b"\n")
        return [d for d in map(self._data, complete) if d is not None]

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer, b""
        data = self._data(rest)
        return [data] if data is not None else []

    @staticmethod
    def _data(line: bytes) -> str | None:
        text = line.decode("utf-8", "replace").strip()
        if text.startswith("data:"):
            return text[5:].strip() or None
        if text.startswith("{"):  # containers that stream JSON Lines without SSE framing
            return text
        return None  # blank separators, comments, event: and id: fields


def _checked(kind: Kind, data: Any, model: ModelSpec) -> Json:
    key = "data" if kind is Kind.EMBEDDINGS else "choices"
    if not isinstance(data, dict) or (key not in data and "usage" not in data):
        raise UpstreamError(
            f"{_where(model)} answered with something that is not an OpenAI {kind.value} "
            f"response ({str(data)[:80]!r}). Serve the model with a container that speaks the "
            "OpenAI API (LMI, vLLM, TGI Messages) or use another protocol.",
            code="upstream_malformed",
        )
    return data


class SageMakerEndpoint:
    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        body = request_body(payload)

        def call() -> bytes:
            response = aws_client(SERVICE, model).invoke_endpoint(
                EndpointName=model.wire_name,
                Body=body,
                ContentType="application/json",
                Accept="application/json",
            )
            return bytes(response["Body"].read())

        try:
            raw = await asyncio.to_thread(call)
        except Exception as exc:
            raise _map_error(exc, model) from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(
                f"{_where(model)} answered with invalid JSON ({raw[:80]!r}). Retry the request "
                "or call another model.",
                code="upstream_malformed",
            ) from exc
        return _checked(kind, data, model)

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> AsyncIterator[Json]:
        body = request_body({**payload, "stream": True})

        def call() -> Any:
            response = aws_client(SERVICE, model).invoke_endpoint_with_response_stream(
                EndpointName=model.wire_name,
                Body=body,
                ContentType="application/json",
                Accept="text/event-stream",
            )
            return response["Body"]

        try:
            events = await open_in_thread(call, lambda stream: stream.close())
        except Exception as exc:
            raise _map_error(exc, model) from exc
        lines = SSELines()
        finished: set[int] = set()
        try:
            async with contextlib.aclosing(iterate_in_thread(events, events.close)) as parts:
                async for event in parts:
                    part = event.get("PayloadPart") if isinstance(event, dict) else None
                    if part is None:
                        continue  # errors arrive as exceptions; other events carry nothing
                    for data in lines.feed(part.get("Bytes") or b""):
                        if data == "[DONE]":
                            return
                        chunk = _chunk(kind, data, model, finished)
                        yield chunk
            for data in lines.flush():
                if data != "[DONE]":
                    yield _chunk(kind, data, model, finished)
            if not finished:
                raise UpstreamError(
                    f"{_where(model)} ended the stream before it finished. The response is "
                    "incomplete; retry it.",
                    code="upstream_truncated",
                )
        except EdgerouteError:
            raise
        except Exception as exc:
            raise _map_error(exc, model) from exc


def _chunk(kind: Kind, data: str, model: ModelSpec, finished: set[int]) -> Json:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise UpstreamError(
            f"{_where(model)} sent a malformed stream event ({data[:80]!r}). The response is "
            "incomplete; retry it.",
            code="upstream_malformed",
        ) from exc
    if isinstance(chunk, dict) and "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise UpstreamError(
            f"{_where(model)} failed mid-stream: {message}", code="upstream_stream_error"
        )
    chunk = _checked(kind, chunk, model)
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason"):
            finished.add(int(choice.get("index", 0)))
    return chunk
