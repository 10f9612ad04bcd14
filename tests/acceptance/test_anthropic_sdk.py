"""``POST /v1/messages`` through Anthropic's own SDK, unchanged, against `edgeroute serve`
and llama.cpp's real server (SmolLM2). Tool use is tested against the scripted upstream
(tests/unit/test_messages_api.py): SmolLM2 on llama.cpp cannot call tools.
"""

from __future__ import annotations

import anthropic
import httpx
import httpx2
import pytest

from tests.support.gateway import GatewayProcess

MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def claude(gateway: GatewayProcess, api_key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=api_key, max_retries=0, timeout=60)


def test_create_with_a_system_prompt(claude: anthropic.Anthropic) -> None:
    response = claude.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=16,
        system="You are terse.",
        messages=[{"role": "user", "content": "Say hello in one word."}],
    )
    message = response.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.model == MODEL and message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert response.headers["x-edgeroute-model"] == MODEL
    assert response.headers["request-id"] == response.headers["x-request-id"]


def test_stop_reason_max_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=2,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


def test_stream_text_and_final_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL,
        max_tokens=16,
        system="Count plainly.",
        messages=[{"role": "user", "content": "Count from one to five."}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip()
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_a_deterministic_request_is_served_from_cache_the_second_time(
    claude: anthropic.Anthropic,
) -> None:
    def ask() -> httpx2.Headers:
        return claude.messages.with_raw_response.create(
            model=MODEL,
            max_tokens=8,
            messages=[{"role": "user", "content": "Name a colour (cache test)."}],
            extra_body={"temperature": 0},
        ).headers

    ask()
    assert ask()["x-edgeroute-cache"] == "hit"


def test_auto_routing_serves_messages(claude: anthropic.Anthropic) -> None:
    response = claude.messages.with_raw_response.create(
        model="auto", max_tokens=8, messages=[{"role": "user", "content": "Say hi."}]
    )
    assert response.parse().type == "message"
    assert response.headers["x-edgeroute-route-reason"]


def test_bad_key_is_authentication_error(gateway: GatewayProcess) -> None:
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="er-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"


def test_missing_max_tokens_is_bad_request(claude: anthropic.Anthropic) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.post("/v1/messages", body=body, cast_to=httpx2.Response)
    error = caught.value.body
    assert isinstance(error, dict) and error["error"]["type"] == "invalid_request_error"
    assert "'max_tokens'" in error["error"]["message"]


def test_unknown_model_is_not_found(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(
            model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_web_search_tool_is_refused_by_name(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=MODEL,
            max_tokens=8,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "x"}],
        )
    assert "web_search_20250305" in caught.value.message


def test_context_too_long_is_bad_request(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "word " * 5000}]
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_upstream_down_is_overloaded(gateway: GatewayProcess, api_key: str) -> None:
    answer = httpx.post(
        gateway.url + "/v1/messages",
        headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
        json={
            "model": "overloaded",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "x"}],
        },
        timeout=30,
    )
    assert answer.status_code == 529
    assert answer.json()["error"]["type"] == "overloaded_error"


def test_body_too_large_is_413_in_anthropics_shape(gateway: GatewayProcess, api_key: str) -> None:
    answer = httpx.post(
        gateway.url + "/v1/messages",
        headers={"x-api-key": api_key},
        content=b"{" + b" " * (7 * 1024 * 1024) + b"}",
        timeout=30,
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "request_too_large"
