"""A registry entry with ``protocol: anthropic`` forwards to an Anthropic-compatible
upstream (tests/support/anthropic_upstream.py, over real HTTP): chat requests are
translated to Messages and back, streams included, and its failures are mapped as
every upstream's are. The gateway runs in process; clients are the openai and
anthropic SDKs, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from edgeroute.upstreams.http import close_shared_client
from tests.support.anthropic_upstream import AnthropicUpstream
from tests.support.inprocess import Client, add_key, memory_gateway

CITY_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as server:
        yield server


@pytest.fixture
async def clients(
    upstream: AnthropicUpstream, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]]:
    monkeypatch.setenv("EDGEROUTE_TEST_ANTHROPIC_KEY", "sk-ant-test-key-123")
    entries = "\n".join(
        f"""  - {{name: {name}, upstream_model: {name}, protocol: anthropic,
     endpoint: '{upstream.url}', tier: small, capabilities: [chat, tools, vision],
     retries: 0, max_output_tokens: 512,
     credential: {{env: EDGEROUTE_TEST_ANTHROPIC_KEY, header: x-api-key, scheme: ''}}}}"""
        for name in ("text", "tool", "stop-seq", "overloaded", "invalid", "cut")
    )
    gw = memory_gateway("models:\n" + entries)
    secret, _ = await add_key(gw)
    transport = httpx2.ASGITransport(app=Client(gw, secret).app)
    async with httpx2.AsyncClient(transport=transport) as http:
        yield (
            openai.AsyncOpenAI(
                base_url="http://gateway/v1", api_key=secret, http_client=http, max_retries=0
            ),
            anthropic.AsyncAnthropic(
                base_url="http://gateway", api_key=secret, http_client=http, max_retries=0
            ),
        )
    await close_shared_client()


async def test_chat_is_forwarded_as_messages(
    clients: tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic], upstream: AnthropicUpstream
) -> None:
    chat, _ = clients
    completion = await chat.chat.completions.create(
        model="text",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
        ],
        temperature=0.2,
        stop=["\n\n"],
        user="u-9",
    )
    assert completion.choices[0].message.content == "Bonjour from Messages"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 6)
    body, headers = upstream.requests[-1]
    assert body == {
        "model": "text",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "system": "Answer in French.",
        "max_tokens": 512,
        "temperature": 0.2,
        "stop_sequences": ["\n\n"],
        "metadata": {"user_id": "u-9"},
    }
    assert headers["x-api-key"] == "sk-ant-test-key-123"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers


async def test_tool_calls_both_ways(
    clients: tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic], upstream: AnthropicUpstream
) -> None:
    chat, _ = clients
    completion = await chat.chat.completions.create(
        model="tool",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[CITY_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    [call] = choice.message.tool_calls or []
    assert call.id == "toolu_1" and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    body, _ = upstream.requests[-1]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": CITY_TOOL["function"].get("parameters"),
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}

    await chat.chat.completions.create(
        model="text",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        ],
        tools=[CITY_TOOL],
    )
    body, _ = upstream.requests[-1]
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}],
        },
    ]


async def test_streams_are_translated_both_ways(
    clients: tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic],
) -> None:
    chat, claude = clients
    stream = await chat.chat.completions.create(
        model="tool",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[CITY_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments = "".join(
        (t.function.arguments or "") if t.function else ""
        for c in chunks
        if c.choices
        for t in c.choices[0].delta.tool_calls or []
    )
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert text == "Let me check. " and json.loads(arguments) == {"city": "Paris"}
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11

    # Messages in, Messages out: a stop sequence survives the trip through chat.
    async with claude.messages.stream(
        model="stop-seq",
        max_tokens=20,
        stop_sequences=["3"],
        messages=[{"role": "user", "content": "Count."}],
    ) as events:
        final = await events.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "3"
    assert final.content[0].type == "text" and final.content[0].text == "Counting 1 2  "
    buffered = await claude.messages.create(
        model="stop-seq",
        max_tokens=20,
        stop_sequences=["3"],
        messages=[{"role": "user", "content": "x"}],
    )
    assert (buffered.stop_reason, buffered.stop_sequence) == ("stop_sequence", "3")


async def test_upstream_failures_map_as_every_upstreams_do(
    clients: tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic],
) -> None:
    chat, claude = clients
    with pytest.raises(openai.APIStatusError) as overloaded:
        await chat.chat.completions.create(
            model="overloaded", messages=[{"role": "user", "content": "x"}]
        )
    assert overloaded.value.status_code == 503
    with pytest.raises(anthropic.APIStatusError) as overloaded_again:
        await claude.messages.create(
            model="overloaded", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert overloaded_again.value.status_code == 529
    with pytest.raises(openai.BadRequestError) as invalid:
        await chat.chat.completions.create(
            model="invalid", messages=[{"role": "user", "content": "x"}]
        )
    assert "roles must alternate" in invalid.value.message
    with pytest.raises(openai.APIError):  # ended before message_stop: an incomplete answer
        stream = await chat.chat.completions.create(
            model="cut", messages=[{"role": "user", "content": "x"}], stream=True
        )
        [c async for c in stream]


async def test_what_messages_cannot_do_is_refused_by_name(
    clients: tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic], upstream: AnthropicUpstream
) -> None:
    chat, _ = clients
    before = len(upstream.requests)
    for extra, param in (
        ({"seed": 7}, "seed"),
        ({"n": 2}, "n"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            await chat.chat.completions.create(
                model="text",
                messages=[{"role": "user", "content": "x"}],
                **extra,
            )
        assert refused.value.param == param
    with pytest.raises(openai.BadRequestError):
        await chat.embeddings.create(model="text", input="x")
    assert len(upstream.requests) == before
