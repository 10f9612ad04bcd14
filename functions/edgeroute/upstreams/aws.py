"""The boto3 plumbing both AWS adapters (SageMaker, Bedrock) share: one client per
service, region and timeouts; calls and event streams run on worker threads; AWS errors
mapped to edgeroute's, naming the upstream the same way. boto3 is synchronous, so nothing
here blocks the event loop.

AWS's own error text (ARNs, account ids, IAM roles) and the resource and region an
upstream runs in go in an error's detail, for the server log; callers read model names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import (
    EdgerouteError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.upstreams.base import upstream_for
from edgeroute.upstreams.http import max_connections

T = TypeVar("T")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")

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


def describe(resource: str, model: ModelSpec) -> str:
    """Where the upstream runs, as the server log names it: ``resource`` (say "Bedrock
    model") and its name, with the registry's model name and the region."""
    region = region_for(model) or "the default region"
    return f"{resource} '{model.wire_name}' (model '{model.name}', {region})"


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
                max_pool_connections=max_connections(),
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


@contextlib.asynccontextmanager
async def event_stream(
    open_stream: Callable[[], Any],
    model: ModelSpec,
    map_error: Callable[[Exception, ModelSpec], EdgerouteError],
) -> AsyncIterator[AsyncGenerator[Any, None]]:
    """Open a botocore event stream on a worker thread and give its events. Failures, also
    while reading (in the ``async with`` body), raise as ``map_error`` maps them, unless
    already edgeroute's; the stream is closed on leaving, early or not."""
    try:
        stream = await open_in_thread(open_stream, lambda opened: opened.close())
    except Exception as exc:
        raise map_error(exc, model) from exc
    try:
        async with contextlib.aclosing(iterate_in_thread(stream, stream.close)) as events:
            yield events
    except EdgerouteError:
        raise
    except Exception as exc:
        raise map_error(exc, model) from exc


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


def map_aws_error(exc: Exception, model: ModelSpec, located: str, actions: str) -> EdgerouteError:
    """The caller-visible error for what both AWS services share: throttling, IAM, network.
    ``located`` (``describe``) and AWS's words go to the detail only."""
    import urllib3.exceptions
    from botocore import exceptions as bx

    code, message, _ = error_fields(exc)
    where = upstream_for(model)
    detail = f"{located}: {code}: {message}" if code else f"{located}: {type(exc).__name__}: {exc}"
    t = model.timeouts
    if _THROTTLED.search(code):
        return UpstreamUnavailable(
            f"{where} is throttled by its provider. Retry after 5 s or call another model.",
            headers={"Retry-After": "5"},
            detail=f"{detail}. Raise the account's quota if this persists.",
        )
    if code.startswith("ServiceUnavailable") or code == "ModelNotReadyException":
        wait = "30" if code == "ModelNotReadyException" else "5"
        return UpstreamUnavailable(
            f"{where} is not ready to serve. Retry after {wait} s or call another model.",
            headers={"Retry-After": wait},
            detail=detail,
        )
    if code.startswith("Internal"):
        return UpstreamError(f"{where} failed inside AWS. Retry the request.", detail=detail)
    if _DENIED.search(code) or isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return UpstreamAuthFailed(
            f"{where} refused edgeroute's AWS credentials. This is the gateway's "
            "configuration, not your request: call another model or retry later.",
            detail=f"{detail}. An operator must grant the gateway's IAM role {actions}.",
        )
    if isinstance(exc, bx.NoRegionError):
        return UpstreamError(
            f"{where} cannot be called: the gateway's configuration for it is incomplete. "
            "Call another model.",
            detail=f"No AWS region is known for model '{model.name}'. Set AWS_REGION, or "
            "give the model an 'endpoint' URL that names its region.",
        )
    if isinstance(exc, bx.ReadTimeoutError | urllib3.exceptions.ReadTimeoutError):
        return UpstreamTimeout(
            f"{where} sent nothing for {t.read} s (the model's read timeout). Retry later "
            "or call another model.",
            headers={"Retry-After": "5"},
            detail=detail,
        )
    if isinstance(exc, bx.ConnectTimeoutError):
        return UpstreamTimeout(
            f"{where} did not accept a connection within {t.connect} s. Retry later or "
            "call another model.",
            headers={"Retry-After": "5"},
            detail=detail,
        )
    cut = (bx.ConnectionClosedError, bx.ResponseStreamingError, urllib3.exceptions.ProtocolError)
    if isinstance(exc, cut):
        return UpstreamError(
            f"{where} broke off its response. Retry the request.",
            code="upstream_truncated",
            detail=detail,
        )
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionError):
        return UpstreamUnavailable(
            f"{where} is unreachable. Retry after 5 s or call another model.",
            headers={"Retry-After": "5"},
            detail=f"{detail}. Check the model's region and 'endpoint'.",
        )
    return UpstreamError(f"{where} failed. Retry the request or call another model.", detail=detail)
