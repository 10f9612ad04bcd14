"""Upstream faults, injected by a misbehaving OpenAI-compatible server, each end in a
clean OpenAI-shaped error within the model's timeouts: never a hang or a traceback."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.support.fault_upstream import FaultUpstream
from tests.support.gateway import GatewayProcess
from tests.support.openai_sdk import error_field, user_says

MESSAGES = user_says("hello")


def _timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    try:
        fn()
    finally:
        elapsed = time.monotonic() - start
    return elapsed


@pytest.mark.parametrize(
    ("model", "status", "code", "within_s"),
    [
        ("broken", 502, "upstream_error", 3),
        ("overloaded", 503, "upstream_unavailable", 3),
        ("hangs", 504, "upstream_timeout", 4),
        ("resets", 503, "upstream_connection_reset", 3),
        ("unreachable", 503, "upstream_unavailable", 3),
    ],
)
def test_buffered_fault_is_clean_error(
    client: openai.OpenAI, model: str, status: int, code: str, within_s: float
) -> None:
    start = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=MESSAGES)
    assert time.monotonic() - start < within_s
    assert caught.value.status_code == status
    assert error_field(caught.value, "code") == code
    assert model in caught.value.message
    assert "Traceback" not in caught.value.message


def test_overload_passes_retry_after(gateway: GatewayProcess, api_key: str) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "overloaded", "messages": MESSAGES},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"


def test_unreachable_names_the_model_not_the_endpoint(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="unreachable", messages=MESSAGES)
    assert "'unreachable' is unreachable" in caught.value.message
    assert "127.0.0.1:9" not in caught.value.message  # where it runs is the server log's
    # and the rest keeps working
    assert client.chat.completions.create(model="instant", messages=MESSAGES).choices


@pytest.mark.parametrize("stream", [False, True])
def test_retry_before_first_byte(
    client: openai.OpenAI, fault_upstream: FaultUpstream, stream: bool
) -> None:
    # 'flaky' fails its first request with 503, then answers; the model allows one retry.
    fault_upstream.requests["flaky#retry"] = 0
    response = client.chat.completions.with_raw_response.create(
        model="flaky",
        messages=MESSAGES,
        stream=stream,
    )
    assert response.headers["x-edgeroute-attempts"] == "2"
    assert "retried" in response.headers["x-edgeroute-route-reason"]
    assert fault_upstream.requests["flaky#retry"] == 2


def test_fallback_model_answers(client: openai.OpenAI) -> None:
    response = client.chat.completions.with_raw_response.create(
        model="with-fallback", messages=MESSAGES
    )
    assert response.headers["x-edgeroute-model"] == "instant"
    assert response.headers["x-edgeroute-attempts"] == "2"
    assert "fallback to 'instant'" in response.headers["x-edgeroute-route-reason"]
    assert response.parse().model == "instant"


@pytest.mark.parametrize(
    ("model", "words", "within_s"),
    [
        ("cuts", "broke off", 4),
        ("malformed", "malformed stream event", 4),
        ("stream-error", "failed mid-stream", 4),
        ("stalls", "did not answer within", 4),
    ],
)
def test_midstream_failure_is_sse_error_event(
    client: openai.OpenAI, model: str, words: str, within_s: float
) -> None:
    start = time.monotonic()
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model=model, messages=MESSAGES, stream=True):
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert time.monotonic() - start < within_s
    assert received[0] == "Hello"  # what arrived before the failure was passed through
    assert words in caught.value.message, caught.value.message


def test_midstream_error_event_ends_the_stream(gateway: GatewayProcess, api_key: str) -> None:
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "cuts", "messages": MESSAGES, "stream": True},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1].startswith('data: {"error"')
    assert "[DONE]" not in "".join(lines)


def test_stream_fault_before_first_byte_is_http_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="broken", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 502


def test_client_disconnect_cancels_upstream(
    gateway: GatewayProcess, api_key: str, fault_upstream: FaultUpstream
) -> None:
    before = fault_upstream.disconnects["slow-stream"]
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "slow-stream", "messages": MESSAGES, "stream": True},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    ) as response:
        for index, _ in enumerate(response.iter_lines()):
            if index >= 4:
                break
    # The upstream would stream for 10 s; it must see the gateway hang up well before.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and fault_upstream.disconnects["slow-stream"] == before:
        time.sleep(0.05)
    assert fault_upstream.disconnects["slow-stream"] == before + 1


def test_usage_counted_when_upstream_reports_none(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="no-usage",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    buffered = client.chat.completions.create(model="no-usage", messages=MESSAGES)
    assert buffered.choices[0].message.content
