"""``POST /v1/messages`` through Anthropic's own SDK, unchanged, against the gateway's
app in process; upstream calls go to the scripted upstream, which can call tools (the
llama.cpp model of the acceptance tests cannot), fail, and record what it was sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from anthropic.types import ToolParam

from edgeroute.errors import UpstreamUnavailable
from edgeroute.store.base import KeyLimits, KeyPolicy
from edgeroute.store.keys import mint_key
from tests.support.inprocess import Client, add_key, ledger, memory_gateway
from tests.support.scripted_upstream import Answer, Cut, Fail, ScriptedUpstream

REGISTRY = """
models:
  - {name: claude-ish, endpoint: 'http://claude-ish:1/v1', tier: small,
     capabilities: [chat, tools, vision], retries: 0}
  - {name: primary, endpoint: 'http://primary:1/v1', tier: medium, retries: 0,
     fallbacks: [claude-ish]}
"""
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CALL = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}


@pytest.fixture
async def gateway_client() -> AsyncIterator[tuple[Client, anthropic.AsyncAnthropic]]:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw)
    inproc = Client(gw, secret)
    transport = httpx2.ASGITransport(app=inproc.app)  # the SDK's own httpx fork
    async with httpx2.AsyncClient(transport=transport) as http:
        yield (
            inproc,
            anthropic.AsyncAnthropic(
                base_url="http://gateway", api_key=secret, http_client=http, max_retries=0
            ),
        )


@pytest.fixture
def sdk(gateway_client: tuple[Client, anthropic.AsyncAnthropic]) -> anthropic.AsyncAnthropic:
    return gateway_client[1]


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_create_answers_a_message_with_usage_and_the_ledger_records_it(
    gateway_client: tuple[Client, anthropic.AsyncAnthropic], upstream: ScriptedUpstream
) -> None:
    inproc, sdk = gateway_client
    message = await sdk.messages.create(
        model="claude-ish",
        max_tokens=32,
        system="Answer briefly.",
        messages=user("hello"),
        extra_body={"temperature": 0.5, "top_k": 20},  # this SDK's create no longer names them
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
    )

    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == "claude-ish"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello from the scripted upstream"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 5)
    sent = upstream.calls[-1].payload
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "hello"},
    ]
    assert (sent["max_tokens"], sent["temperature"], sent["top_k"]) == (32, 0.5, 20)
    assert (sent["stop"], sent["user"]) == (["END"], "u-1")
    records = await ledger(inproc.gw)
    assert [(r.model, r.status, r.prompt_tokens) for r in records] == [("claude-ish", 200, 7)]


async def test_max_tokens_stop_and_system_blocks(
    sdk: anthropic.AsyncAnthropic, upstream: ScriptedUpstream
) -> None:
    upstream.script("claude-ish", Answer("cut sho", finish="length"))
    message = await sdk.messages.create(
        model="claude-ish",
        max_tokens=2,
        system=[{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
        messages=user("hi"),
    )
    assert message.stop_reason == "max_tokens"
    assert upstream.calls[-1].payload["messages"][0] == {
        "role": "system",
        "content": "One.\n\nTwo.",
    }


async def test_stream_gives_text_and_the_final_message(
    sdk: anthropic.AsyncAnthropic, upstream: ScriptedUpstream
) -> None:
    async with sdk.messages.stream(
        model="claude-ish", max_tokens=32, messages=user("hello")
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello from the scripted upstream"
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 5)
    assert upstream.calls[-1].payload["stream_options"] == {"include_usage": True}


async def test_stream_events_come_in_anthropics_order(
    gateway_client: tuple[Client, anthropic.AsyncAnthropic], upstream: ScriptedUpstream
) -> None:
    inproc, _ = gateway_client
    upstream.script("claude-ish", Answer("Checking.", tool_calls=(CALL,), finish="tool_calls"))
    body = {"model": "claude-ish", "max_tokens": 32, "messages": user("hi"), "stream": True}
    response = await inproc.post("/v1/messages", body)
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",  # text, index 0
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # tool_use, index 1
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


async def test_tool_use_round_trip(
    sdk: anthropic.AsyncAnthropic, upstream: ScriptedUpstream
) -> None:
    """Tools against the scripted upstream: SmolLM2 on llama.cpp cannot call tools."""
    upstream.script("claude-ish", Answer("", tool_calls=(CALL,), finish="tool_calls"))
    first = await sdk.messages.create(
        model="claude-ish",
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=user("Weather in Paris?"),
    )
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "Paris"} and call.id == "call_1"
    sent = upstream.calls[-1].payload
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}

    upstream.script("claude-ish", Answer("Sunny in Paris."))
    second = await sdk.messages.create(
        model="claude-ish",
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            *user("Weather in Paris?"),
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"},
                    {"type": "text", "text": "Summarise."},
                ],
            },
        ],
    )
    assert second.content[0].text == "Sunny in Paris."  # type: ignore[union-attr]
    sent = upstream.calls[-1].payload["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert sent[2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "user", "content": "Summarise."},
    ]


async def test_streamed_tool_call_arrives_as_input_json(
    sdk: anthropic.AsyncAnthropic, upstream: ScriptedUpstream
) -> None:
    upstream.script("claude-ish", Answer("", tool_calls=(CALL,), finish="tool_calls"))
    async with sdk.messages.stream(
        model="claude-ish",
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=user("Weather in Paris?"),
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "Paris"}
    assert upstream.calls[-1].payload["tool_choice"] == "required"


async def test_fallbacks_serve_messages_too(
    sdk: anthropic.AsyncAnthropic, upstream: ScriptedUpstream
) -> None:
    upstream.script("primary", Fail(UpstreamUnavailable("down (scripted)")))
    message = await sdk.messages.create(model="primary", max_tokens=8, messages=user("hi"))
    assert message.model == "claude-ish"
    assert upstream.attempts() == ["primary", "claude-ish"]
    async with sdk.messages.stream(model="primary", max_tokens=8, messages=user("hi")) as stream:
        assert (await stream.get_final_message()).model == "claude-ish"


async def test_a_stream_that_breaks_ends_with_an_error_event(
    gateway_client: tuple[Client, anthropic.AsyncAnthropic], upstream: ScriptedUpstream
) -> None:
    inproc, sdk = gateway_client
    upstream.script("claude-ish", Cut(after_chunks=2))
    body = {"model": "claude-ish", "max_tokens": 32, "messages": user("hi"), "stream": True}
    text = (await inproc.post("/v1/messages", body)).text
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names[-1] == "error" and "message_stop" not in names
    last = json.loads(text.strip().splitlines()[-1].removeprefix("data: "))
    assert last["type"] == "error" and last["error"]["type"] == "api_error"
    with pytest.raises(anthropic.APIStatusError):
        async with sdk.messages.stream(
            model="claude-ish", max_tokens=32, messages=user("hi")
        ) as stream:
            await stream.get_final_message()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"container": "c-1"}, "container"),
        ({"temperature": 1.5}, "temperature"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "x", "name": "f", "input": {}}],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
    ],
)
async def test_what_cannot_be_served_is_a_400_naming_the_field(
    sdk: anthropic.AsyncAnthropic, upstream: ScriptedUpstream, body: dict[str, Any], param: str
) -> None:
    full = {"model": "claude-ish", "max_tokens": 8, "messages": user("hi"), **body}
    if "max_tokens" not in body and param == "max_tokens":
        del full["max_tokens"]
    with pytest.raises(anthropic.BadRequestError) as refused:
        await sdk.post("/v1/messages", body=full, cast_to=httpx2.Response)
    error = refused.value.body
    assert isinstance(error, dict) and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert f"'{param}'" in error["error"]["message"]
    assert upstream.calls == []


async def test_errors_are_anthropics_classes_and_shape(
    gateway_client: tuple[Client, anthropic.AsyncAnthropic], upstream: ScriptedUpstream
) -> None:
    inproc, sdk = gateway_client
    bad_key = sdk.with_options(api_key="er-not-a-key")
    with pytest.raises(anthropic.AuthenticationError) as unauthenticated:
        await bad_key.messages.create(model="claude-ish", max_tokens=8, messages=user("hi"))
    body = unauthenticated.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error" and "API key" in body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as missing:
        await sdk.messages.create(model="no-such-model", max_tokens=8, messages=user("hi"))
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    upstream.script("claude-ish", Fail(UpstreamUnavailable("down (scripted)")))
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await sdk.messages.create(model="claude-ish", max_tokens=8, messages=user("hi"))
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    # The OpenAI routes keep OpenAI's shape.
    openai_shaped = await inproc.post(
        "/v1/chat/completions", {"model": "nope", "messages": user("hi")}
    )
    assert openai_shaped.status_code == 404 and "type" not in openai_shaped.json()


async def test_scopes_and_key_headers(upstream: ScriptedUpstream) -> None:
    gw = memory_gateway(REGISTRY)
    chat_secret, chat_key = mint_key("chat", policy=KeyPolicy(scopes=("chat",)))
    embed_secret, embed_key = mint_key("embed", policy=KeyPolicy(scopes=("embeddings",)))
    await gw.store.put_key(chat_key)
    await gw.store.put_key(embed_key)
    app = Client(gw, chat_secret).app
    body = {"model": "claude-ish", "max_tokens": 8, "messages": user("hi")}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        by_x_api_key = await http.post(
            "/v1/messages",
            json=body,
            headers={"x-api-key": chat_secret, "anthropic-version": "2023-06-01"},
        )
        by_bearer = await http.post(
            "/v1/messages", json=body, headers={"authorization": f"Bearer {chat_secret}"}
        )
        refused = await http.post("/v1/messages", json=body, headers={"x-api-key": embed_secret})
        no_key = await http.post("/v1/messages", json=body)
    assert by_x_api_key.status_code == by_bearer.status_code == 200
    assert by_x_api_key.json()["type"] == "message"
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "permission_error"
    assert "'chat' scope" in refused.json()["error"]["message"]
    assert no_key.status_code == 401 and no_key.json()["type"] == "error"


async def test_count_tokens(sdk: anthropic.AsyncAnthropic) -> None:
    counted = await sdk.messages.count_tokens(
        model="claude-ish", system="Be brief.", messages=user("hello " * 40)
    )
    assert 40 <= counted.input_tokens <= 120
    with pytest.raises(anthropic.NotFoundError):
        await sdk.messages.count_tokens(model="nope", messages=user("hi"))


async def test_bodies_that_are_not_a_request_and_refused_keys(upstream: ScriptedUpstream) -> None:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw, limits=KeyLimits(rpm=1))
    narrow, _ = await add_key(gw, models=("primary",))
    transport = httpx.ASGITransport(app=Client(gw, secret).app)
    body = {"model": "claude-ish", "max_tokens": 8, "messages": user("hi")}
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:

        async def post(content: bytes, key: str = secret) -> httpx.Response:
            return await http.post("/v1/messages", content=content, headers={"x-api-key": key})

        not_json, a_list, empty = (await post(b"{nope"), await post(b"[]"), await post(b""))
        not_allowed = await post(json.dumps(body).encode(), narrow)
        first, limited = (
            await post(json.dumps(body).encode()),
            await post(json.dumps(body).encode()),
        )
    for answer in (not_json, a_list, empty):
        assert answer.status_code == 400
        assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in not_json.json()["error"]["message"]
    assert "JSON object" in a_list.json()["error"]["message"]
    assert not_allowed.status_code == 403
    assert not_allowed.json()["error"]["type"] == "permission_error"
    assert first.status_code == 200
    assert limited.status_code == 429 and limited.json()["error"]["type"] == "rate_limit_error"
    assert "retry-after" in limited.headers
