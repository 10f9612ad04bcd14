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
