"""The process-wide HTTP client for upstream calls, the two ways the HTTP adapters call an
upstream (a JSON POST, an event stream), and the mapping of their failures.

One ``httpx.AsyncClient`` per event loop, backed by aiohttp's connection pool
(httpx-aiohttp): httpcore's pool costs more per request than the gateway itself.
httpx and aiohttp (~0.2 s to import) load with the first call, not with this module, so
a process that calls no upstream (a router's /healthz, key administration) never pays
for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import (
    InvalidRequest,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.types import Json
from edgeroute.upstreams.base import context_exceeded, upstream_for
from edgeroute.upstreams.credentials import resolve

if TYPE_CHECKING:
    import httpx
    from httpx_sse import ServerSentEvent

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
_max_connections = 512  # Settings.max_connections' default, until set_max_connections()


def set_max_connections(limit: int) -> None:
    """Size the upstream pools (``Settings.max_connections``), once at init: clients
    made before keep the size they were made with."""
    global _max_connections
    _max_connections = limit


def max_connections() -> int:
    """Connections per upstream pool: the HTTP client's, and each AWS client's."""
    return _max_connections


def load_transport() -> None:
    """Import the client and its transport now, so the first upstream call does not."""
    import httpx_aiohttp  # noqa: F401
    import httpx_sse  # noqa: F401


def shared_client() -> httpx.AsyncClient:
    """The client for the running loop (Mangum and tests may run more than one loop)."""
    import httpx
    from httpx_aiohttp import AiohttpTransport

    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        for stale in [lp for lp in _clients if lp.is_closed()]:
            del _clients[stale]
        limits = httpx.Limits(max_connections=_max_connections, keepalive_expiry=30.0)
        client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits), trust_env=False)
        _clients[loop] = client
    return client


async def close_shared_client() -> None:
    loop = asyncio.get_running_loop()
    client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()


def timeout_for(model: ModelSpec) -> httpx.Timeout:
    import httpx

    t = model.timeouts
    return httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect)


async def post_json(
    url: str, body: Json, model: ModelSpec, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """POST ``body`` with the model's credential, ``headers`` the protocol adds, and the
    model's timeouts; failing to reach the upstream, or a non-2xx answer, raises what the
    caller should see."""
    import httpx

    credential = resolve(model)
    try:
        response = await shared_client().post(
            url, json=body, headers={**(headers or {}), **credential}, timeout=timeout_for(model)
        )
    except httpx.HTTPError as exc:
        raise map_transport_error(exc, model) from exc
    if response.status_code >= 400:
        raise map_status_error(
            response.status_code, response.content, response.headers, model, credential
        )
    return response


@contextlib.asynccontextmanager
async def event_stream(
    url: str, body: Json, model: ModelSpec, headers: Mapping[str, str] | None = None
) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
    """POST ``body`` for a server-sent event stream and give its events. Failures, also
    while reading (in the ``async with`` body), raise as ``post_json``'s do; the response
    is closed on leaving, early or not."""
    import httpx
    from httpx_sse import EventSource

    client = shared_client()
    credential = resolve(model)
    request = client.build_request(
        "POST",
        url,
        json=body,
        headers={**(headers or {}), **credential, "Accept": "text/event-stream"},
        timeout=timeout_for(model),
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise map_transport_error(exc, model) from exc
    try:
        if response.status_code >= 400:
            answer = await response.aread()
            raise map_status_error(
                response.status_code, answer, response.headers, model, credential
            )
        yield EventSource(response).aiter_sse()
    except httpx.HTTPError as exc:
        raise map_transport_error(exc, model) from exc
    finally:
        await response.aclose()


def _chain(exc: BaseException) -> list[BaseException]:
    links = [exc]
    while links[-1].__cause__ is not None and len(links) < 10:
        links.append(links[-1].__cause__)
    return links


def map_transport_error(exc: Exception, model: ModelSpec) -> UpstreamError:
    """Turn a client-side failure into the caller-visible error; the endpoint and the
    failure's own text go to the detail."""
    import aiohttp  # loaded already: the failure came from a client's transport
    import httpx

    where = upstream_for(model)
    chain = _chain(exc)
    cause = chain[-1]
    detail = f"{model.endpoint}: {type(cause).__name__}: {cause}"

    def seen(*types: type[BaseException]) -> bool:
        return any(isinstance(link, types) for link in chain)

    if seen(aiohttp.ClientConnectorError, ConnectionRefusedError, httpx.ConnectError):
        return UpstreamUnavailable(
            f"{where} is unreachable. Retry after 5 s or call another model.",
            headers={"Retry-After": "5"},
            detail=detail,
        )
    if seen(aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError):
        return UpstreamUnavailable(
            f"{where} closed the connection before answering. Retry the request.",
            code="upstream_connection_reset",
            headers={"Retry-After": "1"},
            detail=detail,
        )
    if seen(TimeoutError, httpx.TimeoutException):
        return UpstreamTimeout(
            f"{where} did not answer within its timeouts "
            f"(connect {model.timeouts.connect}s, read {model.timeouts.read}s, "
            f"total {model.timeouts.total}s). Retry later or call another model.",
            headers={"Retry-After": "5"},
            detail=detail,
        )
    if seen(aiohttp.ClientPayloadError, httpx.ReadError):
        return UpstreamError(
            f"{where} broke off its response. Retry the request.",
            code="upstream_truncated",
            detail=detail,
        )
    return UpstreamError(f"{where} failed. Retry the request or call another model.", detail=detail)


def _upstream_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace")[:500]
    try:
        data = json.loads(text)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except ValueError:
        pass
    return text.strip() or "(empty body)"


def without_credential(text: str, credential: Mapping[str, str]) -> str:
    """``text`` with the credential edgeroute sent blanked out: an upstream that repeats
    a key it rejects must not put it in the caller's error or the server log."""
    for value in credential.values():
        for secret in {value, value.rpartition(" ")[2]}:
            if len(secret) >= 8:  # a scheme word or a stub is no secret worth a mangled text
                text = text.replace(secret, "[credential]")
    return text


def map_status_error(
    status: int,
    body: bytes,
    headers: httpx.Headers,
    model: ModelSpec,
    credential: Mapping[str, str] | None = None,
) -> UpstreamError | InvalidRequest:
    """Map an upstream's non-2xx answer to what the caller should see: the caller's own
    mistakes (too long, rejected) as theirs, with the upstream's reason; everything else
    as the upstream's, its words kept for the server log. Neither ever holds the
    ``credential`` headers edgeroute sent."""
    where = upstream_for(model)
    message = without_credential(_upstream_message(body), credential or {})
    detail = f"{model.endpoint} answered {status}: {message}"
    if status == 400 and ("context" in message.lower() or b"exceed_context" in body):
        return context_exceeded(
            f"model '{model.name}' (context window of {model.context_window} tokens)",
            message,
            detail,
        )
    if status in (400, 422):
        return InvalidRequest(f"{where} rejected the request: {message}", detail=detail)
    if status in (401, 403):
        return UpstreamAuthFailed(
            f"{where} refused edgeroute's credential ({status}). This is the gateway's "
            "configuration, not your request: call another model or retry later.",
            detail=f"{detail}. An operator must fix the model's 'credential' in the registry.",
        )
    if status in (429, 503, 529):  # 529: Anthropic's "overloaded"
        given = headers.get("retry-after", "")
        retry_after = given if given.isdigit() else "5"  # an HTTP date or junk: our default
        # A 429 that names its wait is honoured: the target is skipped until then.
        named = status == 429 and given.isdigit()
        return (UpstreamThrottled if named else UpstreamUnavailable)(
            f"{where} is overloaded ({status}). Retry after {retry_after} s or call another model.",
            headers={"Retry-After": retry_after},
            detail=detail,
        )
    if status == 504:
        return UpstreamTimeout(f"{where} timed out ({status}). Retry later.", detail=detail)
    failed = UpstreamRejected if 400 <= status < 500 else UpstreamError
    return failed(f"{where} failed with status {status}. Retry the request.", detail=detail)
