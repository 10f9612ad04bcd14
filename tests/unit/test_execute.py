"""The execute stage as callers see it: retries before the first byte, fallbacks, one
deadline for all attempts, and how a stream ends when its upstream fails.

Requests go through the gateway's HTTP app in process; upstream calls go to the
scripted upstream, which records every attempt.
"""

from __future__ import annotations

import time

import httpx
import pytest

from edgeroute.errors import UpstreamError, UpstreamUnavailable
from tests.support.inprocess import Client, add_key, memory_gateway, sse_events
from tests.support.scripted_upstream import Answer, Cut, Fail, Hang, ScriptedUpstream, Status

# Retries back off 0.1 s, then 0.2 s: models that retry get room for that.
FAST = "{connect: 0.3, read: 0.3, total: 0.3}"
ROOMY = "{connect: 2, read: 2, total: 2}"
REGISTRY = f"""
models:
  - {{name: steady, endpoint: 'http://steady:1/v1', tier: small, retries: 0, timeouts: {FAST}}}
  - {{name: flaky, endpoint: 'http://flaky:1/v1', upstream_model: flaky-v2, tier: small,
     retries: 2, timeouts: {ROOMY}}}
  - {{name: primary, endpoint: 'http://primary:1/v1', tier: medium, retries: 1,
     fallbacks: [backup], timeouts: {ROOMY}}}
  - {{name: hasty, endpoint: 'http://hasty:1/v1', tier: medium, retries: 1,
     fallbacks: [backup], timeouts: {FAST}}}
  - {{name: backup, endpoint: 'http://backup:1/v1', tier: medium, retries: 0,
     timeouts: {{connect: 5, read: 5, total: 5}}}}
"""
SLACK_S = 1.0  # on top of a deadline: a loaded machine may be slow to wake a timer


@pytest.fixture
async def client() -> Client:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw)
    return Client(gw, secret)


def down() -> Fail:
    return Fail(UpstreamUnavailable("Upstream is unreachable (scripted)."))


@pytest.mark.parametrize("stream", [False, True])
async def test_retries_then_success(
    client: Client, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script("flaky", down(), down(), Answer("third time lucky"))

    response = await client.chat("flaky", stream=stream)

    assert response.status_code == 200
    assert response.headers["x-edgeroute-model"] == "flaky"
    assert response.headers["x-edgeroute-attempts"] == "3"
    assert (
        "retried after flaky: upstream_unavailable"
        in (response.headers["x-edgeroute-route-reason"])
    )
    assert upstream.attempts() == ["flaky"] * 3
    assert all(c.payload["model"] == "flaky-v2" for c in upstream.calls)  # the wire name
    if stream:
        events = sse_events(response.content)
        assert events[-1] == "[DONE]"
        assert "".join(
            e["choices"][0]["delta"]["content"] for e in events[:-1] if e.get("choices")
        ) == ("third time lucky")
        assert all(c.payload["stream_options"] == {"include_usage": True} for c in upstream.calls)
    else:
        body = response.json()
        assert body["choices"][0]["message"]["content"] == "third time lucky"
        assert body["model"] == "flaky"


@pytest.mark.parametrize("stream", [False, True])
async def test_fallback_after_the_targets_retries_are_used(
    client: Client, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script("primary", Status(500, "model crashed"))

    response = await client.chat("primary", stream=stream)

    assert response.status_code == 200
    assert response.headers["x-edgeroute-model"] == "backup"
    assert response.headers["x-edgeroute-attempts"] == "3"
    assert response.headers["x-edgeroute-route-reason"] == (
        "fallback to 'backup' after primary: upstream_error"
    )
    assert upstream.attempts() == ["primary", "primary", "backup"]
    if stream:
        assert sse_events(response.content)[-1] == "[DONE]"
    else:
        assert response.json()["model"] == "backup"


@pytest.mark.parametrize("stream", [False, True])
async def test_errors_the_caller_caused_are_not_retried(
    client: Client, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script("primary", Status(400, "bad field 'foo'"))

    response = await client.chat("primary", stream=stream)

    assert response.status_code == 400  # an HTTP error, not an SSE stream
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "primary" in error["message"]
    assert upstream.attempts() == ["primary"]  # no retry, no fallback


async def timed_out_within_hastys_deadline(client: Client, stream: bool) -> httpx.Response:
    """Call 'hasty' (total 0.3 s); the answer must be a 504 that came within it."""
    started = time.monotonic()
    response = await client.chat("hasty", stream=stream)
    assert time.monotonic() - started < 0.3 + SLACK_S
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    return response


@pytest.mark.parametrize("stream", [False, True])
async def test_a_hanging_target_uses_up_the_one_deadline(
    client: Client, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script("hasty", Hang())

    response = await timed_out_within_hastys_deadline(client, stream)

    assert "within 0.3 s" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == "5"
    assert upstream.attempts() == ["hasty"]  # no time left for a retry or the fallback
    if stream:
        assert upstream.calls[0].closed  # the abandoned stream was closed


@pytest.mark.parametrize("stream", [False, True])
async def test_a_fallback_does_not_get_a_deadline_of_its_own(
    client: Client, upstream: ScriptedUpstream, stream: bool
) -> None:
    # 'hasty' fails at once, twice; 'backup' (total 5 s) hangs: hasty's 0.3 s holds.
    upstream.script("hasty", down())
    upstream.script("backup", Hang())

    await timed_out_within_hastys_deadline(client, stream)

    assert upstream.attempts() == ["hasty", "hasty", "backup"]


async def test_a_stream_cut_after_k_chunks_ends_with_an_error_event(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("primary", Cut(after_chunks=2))

    response = await client.chat("primary", stream=True)

    assert response.status_code == 200  # the stream had started
    events = sse_events(response.content)
    assert [e["choices"][0]["delta"]["content"] for e in events[:2]] == ["Hello", " from"]
    assert len(events) == 3
    error = events[-1]["error"]
    assert error["code"] == "upstream_truncated"
    assert "primary" in error["message"] and "retry" in error["message"]
    assert b"[DONE]" not in response.content
    assert upstream.attempts() == ["primary"]  # nothing is retried after the first byte
    assert upstream.calls[0].closed


async def test_a_stream_failing_before_its_first_chunk_falls_back(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script(
        "primary", Fail(UpstreamError("Upstream sent garbage.", code="upstream_malformed"))
    )

    response = await client.chat("primary", stream=True)

    assert response.status_code == 200
    assert response.headers["x-edgeroute-model"] == "backup"
    assert (
        "fallback to 'backup' after primary: upstream_malformed"
        in (response.headers["x-edgeroute-route-reason"])
    )
    events = sse_events(response.content)
    assert events[-1] == "[DONE]"
    assert all(e["model"] == "backup" for e in events[:-1])
    assert upstream.attempts() == ["primary", "primary", "backup"]
    assert all(c.closed for c in upstream.calls)


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_429_passes_its_retry_after(
    client: Client, upstream: ScriptedUpstream, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.script("steady", Status(429, "slow down", retry_after="7"))

    response = await client.chat("steady", stream=stream)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert "overloaded (429)" in error["message"]
    assert "steady" in error["message"]
    # The upstream's own words and its endpoint are the server log's, under the request id.
    assert "slow down" not in error["message"] and "http://" not in error["message"]
    logged = [r.getMessage() for r in caplog.records if r.name == "edgeroute.errors"]
    assert any(
        response.headers["x-request-id"] in line and "slow down" in line and "http://" in line
        for line in logged
    ), logged


async def test_upstream_429_with_retry_after_falls_back_without_a_retry(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("primary", Status(429, "slow down", retry_after="7"))

    response = await client.chat("primary")

    assert response.status_code == 200
    assert response.headers["x-edgeroute-model"] == "backup"
    assert upstream.attempts() == ["primary", "backup"]  # it asked for 7 s: not at once


async def test_upstream_429_without_retry_after_is_retried_then_falls_back(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("primary", Status(429, "slow down"))

    response = await client.chat("primary")

    assert response.headers["x-edgeroute-model"] == "backup"
    assert upstream.attempts() == ["primary", "primary", "backup"]


async def test_the_last_error_is_what_the_caller_sees_when_every_target_fails(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("primary", down())
    upstream.script("backup", Status(500, "backup crashed"))

    response = await client.chat("primary")

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert error["type"] == "server_error"
    assert "'backup'" in error["message"] and "backup crashed" not in error["message"]
    assert upstream.attempts() == ["primary", "primary", "backup"]
