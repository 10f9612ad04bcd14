"""The HTTP adapters' shared plumbing (``post_json``, ``event_stream``), against httpx's
MockTransport: failures surface as the caller's errors and every stream is closed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from edgeroute.config.registry import ModelSpec, Protocol
from edgeroute.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    UpstreamError,
    UpstreamUnavailable,
)
from edgeroute.types import Kind
from edgeroute.upstreams import http
from edgeroute.upstreams.openai_compat import OpenAICompatible
from edgeroute.upstreams.tgi import TGINative

OPENAI = ModelSpec(name="m", protocol=Protocol.OPENAI, endpoint="http://up.local/v1", tier="small")
TGI = ModelSpec(name="t", protocol=Protocol.TGI, endpoint="http://tgi.local", tier="small")
CHAT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


class _Body(httpx.AsyncByteStream):
    """A response body that records being closed, and can break off after its parts."""

    def __init__(self, parts: list[bytes], fail: bool = False) -> None:
        self.parts, self.fail, self.closed = parts, fail, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part
        if self.fail:
            raise httpx.ReadError("connection reset mid-body")

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Callable[[httpx.Response], None]:
    def answer_with(response: httpx.Response) -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: response))
        monkeypatch.setattr(http, "shared_client", lambda: client)

    return answer_with


def _sse(*events: object, fail: bool = False) -> _Body:
    return _Body([f"data: {json.dumps(e)}\n\n".encode() for e in events], fail)


async def _drain(stream: AsyncIterator[object]) -> list[object]:
    return [item async for item in stream]


async def test_post_json_maps_status_to_the_callers_error(upstream: Callable[..., None]) -> None:
    upstream(httpx.Response(429, json={"error": {"message": "busy"}}, headers={"retry-after": "7"}))
    with pytest.raises(UpstreamUnavailable) as caught:
        await OpenAICompatible().send(Kind.CHAT, CHAT, OPENAI)
    assert caught.value.headers["Retry-After"] == "7"
    upstream(httpx.Response(400, json={"error": {"message": "bad 'n'"}}))
    with pytest.raises(InvalidRequest, match="bad 'n'"):
        await TGINative().send(Kind.CHAT, CHAT, TGI)


async def test_stream_status_error_is_mapped_and_closed(upstream: Callable[..., None]) -> None:
    body = _Body([b'{"error": {"message": "overloaded"}}'])
    upstream(httpx.Response(503, stream=body))
    with pytest.raises(UpstreamUnavailable, match="overloaded"):
        await _drain(OpenAICompatible().stream(Kind.CHAT, CHAT, OPENAI))
    assert body.closed


async def test_stream_that_is_not_sse(upstream: Callable[..., None]) -> None:
    upstream(httpx.Response(200, json={"choices": []}))
    with pytest.raises(UpstreamError) as caught:
        await _drain(OpenAICompatible().stream(Kind.CHAT, CHAT, OPENAI))
    assert caught.value.code == "upstream_not_streaming"
    # TGI's adapter has no such error of its own: the transport mapping names the failure
    # (and the endpoint) in the detail, for the log.
    with pytest.raises(UpstreamError, match="Upstream for model 't' failed") as caught:
        await _drain(TGINative().stream(Kind.CHAT, CHAT, TGI))
    assert caught.value.code == "upstream_error"
    assert caught.value.detail is not None
    assert "SSEError" in caught.value.detail and "http://tgi.local" in caught.value.detail
    assert "tgi.local" not in caught.value.message


async def test_stream_broken_mid_body_is_mapped_and_closed(upstream: Callable[..., None]) -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0}]}
    body = _sse(chunk, fail=True)
    upstream(httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"}))
    with pytest.raises(UpstreamError) as caught:
        await _drain(OpenAICompatible().stream(Kind.CHAT, CHAT, OPENAI))
    assert caught.value.code == "upstream_truncated"
    assert body.closed


async def test_stream_closed_after_done_and_on_early_exit(upstream: Callable[..., None]) -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0}]}
    body = _sse(chunk, chunk)
    body.parts.append(b"data: [DONE]\n\n")
    upstream(httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"}))
    assert len(await _drain(OpenAICompatible().stream(Kind.CHAT, CHAT, OPENAI))) == 2
    assert body.closed

    body = _sse(chunk, chunk)
    upstream(httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"}))
    stream = OpenAICompatible().stream(Kind.CHAT, CHAT, OPENAI)
    assert await anext(stream) == chunk
    await stream.aclose()  # the caller went away
    assert body.closed


def test_a_request_longer_than_the_context_is_the_callers_to_fix() -> None:
    answer = b'{"error": {"message": "prompt exceeds the context"}}'
    error = http.map_status_error(400, answer, httpx.Headers(), OPENAI)
    assert isinstance(error, ContextLengthExceeded) and error.status_code == 400
    assert (error.param, error.code) == ("messages", "context_length_exceeded")
    assert error.message == (
        "The request does not fit model 'm' (context window of "
        f"{OPENAI.context_window} tokens) (prompt exceeds the context). Shorten 'messages' "
        "or lower 'max_tokens'."
    )
    assert error.detail is not None and "http://up.local/v1" in error.detail


@pytest.mark.parametrize("status", [400, 401, 500])
def test_an_upstream_repeating_edgeroutes_credential_never_passes_it_on(status: int) -> None:
    sent = {"Authorization": "Bearer sk-upstream-0123456789abcdef"}
    body = json.dumps(
        {"error": {"message": "Incorrect API key provided: Bearer sk-upstream-0123456789abcdef"}}
    ).encode()
    error = http.map_status_error(status, body, httpx.Headers(), OPENAI, sent)
    seen = json.dumps(error.body()) + str(error.detail)
    assert "sk-upstream-0123456789abcdef" not in seen
    assert "Incorrect API key provided" in str(error.detail)
