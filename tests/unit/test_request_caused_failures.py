"""Requests that would make an upstream fail (a part the model cannot take, a malformed
earlier tool call) are refused with a 400 before they are sent: once two such requests
made the upstream answer 500, which opened the endpoint's shared circuit and cost
another tenant 17 of 24 requests."""

from __future__ import annotations

from typing import Any

import pytest

from edgeroute.store.base import KeyLimits
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import ScriptedUpstream

REGISTRY = """
models:
  - {name: plain, endpoint: 'http://plain:1/v1', tier: small, retries: 0}
  - {name: listener, endpoint: 'http://listener:1/v1', tier: small, retries: 0,
     capabilities: [chat, audio]}
  - {name: caller, endpoint: 'http://caller:1/v1', tier: small, retries: 0,
     capabilities: [chat, tools]}
"""
AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}


async def _client() -> Client:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw, limits=KeyLimits())
    return Client(gw, secret)


async def test_audio_to_a_model_without_audio_is_a_400_before_sending(
    upstream: ScriptedUpstream,
) -> None:
    client = await _client()
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}, AUDIO]}]
    refused = await client.chat("plain", messages=messages)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "model_capability_missing" and "audio" in error["message"]
    assert upstream.calls == []
    assert (await client.chat("listener", messages=messages)).status_code == 200


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({}, "id"),
        ({"id": "c1", "type": "function"}, "function"),
        ({"id": "c1", "type": "function", "function": {"name": "f"}}, "arguments"),
        ({"id": "c1", "type": "shell", "function": {"name": "f", "arguments": "{}"}}, "type"),
    ],
)
async def test_malformed_tool_calls_are_a_400_naming_the_field(
    upstream: ScriptedUpstream, call: dict[str, Any], field: str
) -> None:
    client = await _client()
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    refused = await client.chat("plain", messages=messages)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"].startswith("messages[1].tool_calls[0]")
    assert field in refused.json()["error"]["param"] + refused.json()["error"]["message"]
    assert upstream.calls == []


@pytest.mark.parametrize(
    "message",
    [
        {"role": "tool", "tool_call_id": "c1"},
        {"role": "tool", "tool_call_id": "c1", "content": None},
        {"role": "user", "content": None},
        {"role": "assistant"},
    ],
    ids=["tool-without-content", "tool-null-content", "user-null", "assistant-empty"],
)
async def test_a_message_without_content_is_a_400_before_sending(
    upstream: ScriptedUpstream, message: dict[str, Any]
) -> None:
    """Found by schemathesis: llama.cpp answered a tool message without content with a
    500, and the circuit opened on smollm2 for every tenant."""
    client = await _client()
    messages = [{"role": "user", "content": "weather?"}, message]
    refused = await client.chat("plain", messages=messages)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "messages[1].content"
    assert f"role '{message['role']}' needs" in error["message"]
    assert upstream.calls == []


async def test_an_assistant_message_calling_tools_may_leave_content_out(
    upstream: ScriptedUpstream,
) -> None:
    client = await _client()
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert (await client.chat("plain", messages=messages)).status_code == 200


async def test_nulls_are_left_out_of_what_the_upstream_gets(upstream: ScriptedUpstream) -> None:
    """Found by schemathesis: llama.cpp answers a null 'name' or 'tool_call_id' in a
    message, a null text or a null tool description with a 500 (null means absent in
    OpenAI's API), and the circuit opened for every tenant."""
    client = await _client()
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "weather?", "name": None, "reasoning_content": None},
        {"role": "assistant", "content": None, "tool_calls": [call], "name": None},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny", "name": None},
    ]
    tools = [{"type": "function", "function": {"name": "f", "description": None}}]
    answered = await client.chat("caller", messages=messages, tools=tools, temperature=None)
    assert answered.status_code == 200, answered.text
    sent = upstream.calls[0].payload
    assert sent["messages"] == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert sent["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert "temperature" not in sent
