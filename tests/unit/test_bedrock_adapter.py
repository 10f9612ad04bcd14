"""The Bedrock adapter against botocore's Stubber, with Converse's real shapes.

Streams are stubbed as in test_sagemaker_adapter.py (see its docstring): events are
validated against ConverseStream's union shape, encoded as event-stream frames and read
back through a real ``botocore.eventstream.EventStream``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from edgeroute.config.registry import ModelSpec, Protocol
from edgeroute.errors import (
    ContextLengthExceeded,
    EdgerouteError,
    InvalidRequest,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.types import Kind
from edgeroute.upstreams import adapter_for
from edgeroute.upstreams.aws import aws_client
from edgeroute.upstreams.bedrock import BedrockConverse
from edgeroute.upstreams.converse import to_converse
from tests.unit.test_sagemaker_adapter import add_stream, body, use_dummy_aws, workers_gone

MODEL = ModelSpec(
    name="claude",
    protocol=Protocol.BEDROCK,
    upstream_model="us.anthropic.claude-sonnet-4-20250514-v1:0",
    tier="large",
)
MODEL_ID = "us.anthropic.claude-sonnet-4-20250514-v1:0"
PNG = b"\x89PNG\r\n\x1a\nfake"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CHAT: dict[str, Any] = {
    "model": MODEL_ID,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where this photo was taken?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "tooluse_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "18 C, sunny"},
        {"role": "user", "content": "And in Fahrenheit?"},
    ],
    "max_tokens": 64,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": "###",
    "seed": 7,
    "tools": [WEATHER],
    "tool_choice": "required",
}
CONVERSE = {
    "modelId": MODEL_ID,
    "system": [{"text": "Be brief."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"text": "Weather where this photo was taken?"},
                {"image": {"format": "png", "source": {"bytes": PNG}}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18 C, sunny"}]}},
                {"text": "And in Fahrenheit?"},
            ],
        },
    ],
    "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["###"]},
    "toolConfig": {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "inputSchema": {"json": WEATHER["function"]["parameters"]},
                }
            }
        ],
        "toolChoice": {"any": {}},
    },
}
USAGE = {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    use_dummy_aws(monkeypatch)
    with Stubber(aws_client("bedrock-runtime", MODEL)) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _converse_response(content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": USAGE,
        "metrics": {"latencyMs": 120},
    }


# ---- translation and buffered -------------------------------------------------------------


async def test_chat_translates_to_converse_and_tool_calls_come_back(stub: Stubber) -> None:
    content: list[dict[str, Any]] = [
        {"text": "Let me convert."},
        {"toolUse": {"toolUseId": "tooluse_2", "name": "get_weather", "input": {"city": "Paris"}}},
    ]
    stub.add_response("converse", _converse_response(content, "tool_use"), CONVERSE)
    answer = await BedrockConverse().send(Kind.CHAT, CHAT, MODEL)
    choice = answer["choices"][0]
    assert answer["object"] == "chat.completion"
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me convert."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert answer["usage"] == {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("content_filtered", "content_filter"),
        ("guardrail_intervened", "content_filter"),
    ],
)
async def test_completions_wrap_the_prompt_and_map_stop_reasons(
    stub: Stubber, stop: str, finish: str
) -> None:
    expected = {"modelId": MODEL_ID, "messages": [{"role": "user", "content": [{"text": "2+2="}]}]}
    stub.add_response("converse", _converse_response([{"text": "4"}], stop), expected)
    answer = await BedrockConverse().send(Kind.COMPLETIONS, {"prompt": ["2+2="]}, MODEL)
    assert answer["object"] == "text_completion"
    assert answer["choices"][0] == {
        "index": 0,
        "text": "4",
        "finish_reason": finish,
        "logprobs": None,
    }


def test_tool_choice_variants_and_refusals() -> None:
    simple = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER]}
    named = {**simple, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    assert to_converse(Kind.CHAT, named, MODEL)["toolConfig"]["toolChoice"] == {
        "tool": {"name": "get_weather"}
    }
    assert "toolChoice" not in to_converse(Kind.CHAT, simple, MODEL)["toolConfig"]
    assert "toolConfig" not in to_converse(Kind.CHAT, {**simple, "tool_choice": "none"}, MODEL)
    history = {"messages": CHAT["messages"]}
    with pytest.raises(InvalidRequest, match="needs 'tools'"):
        to_converse(Kind.CHAT, history, MODEL)
    link = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(InvalidRequest, match="data: URL"):
        to_converse(Kind.CHAT, {"messages": [{"role": "user", "content": [link]}]}, MODEL)
    with pytest.raises(InvalidRequest, match="'n'"):
        to_converse(Kind.CHAT, {**simple, "n": 2}, MODEL)


# ---- streaming ----------------------------------------------------------------------------

STREAM_EVENTS: list[dict[str, Any]] = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"delta": {"text": "Checking"}, "contentBlockIndex": 0}},
    {"contentBlockDelta": {"delta": {"text": " now."}, "contentBlockIndex": 0}},
    {"contentBlockStop": {"contentBlockIndex": 0}},
    {
        "contentBlockStart": {
            "start": {"toolUse": {"toolUseId": "tooluse_3", "name": "get_weather"}},
            "contentBlockIndex": 1,
        }
    },
    {"contentBlockDelta": {"delta": {"toolUse": {"input": '{"city": '}}, "contentBlockIndex": 1}},
    {"contentBlockDelta": {"delta": {"toolUse": {"input": '"Paris"}'}}, "contentBlockIndex": 1}},
    {"contentBlockStop": {"contentBlockIndex": 1}},
    {"messageStop": {"stopReason": "tool_use"}},
    {"metadata": {"usage": USAGE, "metrics": {"latencyMs": 300}}},
]


async def test_stream_maps_events_to_chunks_with_usage_last(stub: Stubber) -> None:
    add_stream(stub, "converse_stream", "stream", STREAM_EVENTS, CONVERSE)
    chunks = [c async for c in BedrockConverse().stream(Kind.CHAT, CHAT, MODEL)]
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "Checking now."
    calls = [call for d in deltas for call in d.get("tool_calls", ())]
    assert calls[0] == {
        "id": "tooluse_3",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
        "index": 0,
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Paris"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 29
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1


async def test_model_stream_error_mid_stream_raises_upstream_error(stub: Stubber) -> None:
    events = [
        *STREAM_EVENTS[:2],
        {"modelStreamErrorException": {"message": "model crashed", "originalStatusCode": 500}},
    ]
    add_stream(stub, "converse_stream", "stream", events)
    stream = BedrockConverse().stream(Kind.CHAT, CHAT, MODEL)
    assert (await anext(stream))["choices"][0]["delta"]["role"] == "assistant"
    await anext(stream)
    with pytest.raises(UpstreamError, match="failed mid-stream") as caught:
        await anext(stream)
    assert type(caught.value) is UpstreamError
    assert caught.value.detail is not None and "model crashed" in caught.value.detail
    assert caught.value.code == "upstream_stream_error"


async def test_stream_that_stops_early_is_truncated(stub: Stubber) -> None:
    add_stream(stub, "converse_stream", "stream", STREAM_EVENTS[:3])
    with pytest.raises(UpstreamError) as caught:
        _ = [c async for c in BedrockConverse().stream(Kind.CHAT, CHAT, MODEL)]
    assert caught.value.code == "upstream_truncated"


async def test_closing_the_stream_early_closes_the_botocore_stream(stub: Stubber) -> None:
    # One event, then the connection stays open: the worker is blocked reading it.
    raw = add_stream(stub, "converse_stream", "stream", STREAM_EVENTS[:1], raw={"hold": True})
    stream = BedrockConverse().stream(Kind.CHAT, CHAT, MODEL)
    await anext(stream)
    await stream.aclose()
    assert raw.closed.is_set()
    assert await asyncio.to_thread(raw.finished.wait, 5)
    assert await workers_gone()


# ---- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "status", "expected", "said", "logged"),
    [
        ("ValidationException", "temperature must be <= 1", 400, InvalidRequest, "temperature",
         "ValidationException"),
        ("ValidationException", "Input is too long for requested model.", 400,
         ContextLengthExceeded, "Shorten 'messages'", "ValidationException"),
        ("ValidationException", "The provided model identifier is invalid.", 400, UpstreamError,
         "configuration", "inference profile"),
        ("ThrottlingException", "Too many requests", 429, UpstreamUnavailable, "Retry after 5 s",
         "Too many requests"),
        ("ServiceQuotaExceededException", "quota", 400, UpstreamUnavailable, "Retry after 5 s",
         "Raise the account's quota"),
        ("ModelTimeoutException", "timed out", 408, UpstreamTimeout, "took too long", "timed out"),
        ("AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/fn is not "
         "authorized", 403, UpstreamAuthFailed, "credentials", "IAM role"),
        ("ModelNotReadyException", "loading", 429, UpstreamUnavailable, "Retry after 30 s",
         "loading"),
        ("ServiceUnavailableException", "busy", 503, UpstreamUnavailable, "not ready", "busy"),
        ("ResourceNotFoundException", "no such model", 404, UpstreamError, "configuration",
         "upstream_model"),
    ],
)  # fmt: skip
async def test_client_errors_map_to_edgeroute_errors(
    stub: Stubber,
    code: str,
    message: str,
    status: int,
    expected: type[EdgerouteError],
    said: str,
    logged: str,
) -> None:
    stub.add_client_error(
        "converse", service_error_code=code, service_message=message, http_status_code=status
    )
    with pytest.raises(expected, match=said) as caught:
        await BedrockConverse().send(
            Kind.CHAT, {"messages": [{"role": "user", "content": "x"}]}, MODEL
        )
    assert type(caught.value) is expected
    # The caller reads the model's name; the model ID, the account and AWS's own
    # words about the upstream are the server log's.
    assert "'claude'" in caught.value.message
    assert caught.value.detail is not None
    assert MODEL_ID in caught.value.detail and logged in caught.value.detail
    body = json.dumps(caught.value.body())
    assert MODEL_ID not in body and "123456789012" not in body
    if expected is UpstreamUnavailable:
        assert "Retry-After" in caught.value.headers
    if code == "AccessDeniedException":
        assert caught.value.code == "upstream_auth_failed"


async def test_stream_errors_before_the_first_chunk_surface_on_first_anext(stub: Stubber) -> None:
    stub.add_client_error(
        "converse_stream", service_error_code="ThrottlingException", http_status_code=429
    )
    with pytest.raises(UpstreamUnavailable):
        await anext(BedrockConverse().stream(Kind.CHAT, CHAT, MODEL))


# ---- embeddings and registry --------------------------------------------------------------


async def test_titan_embeddings_through_invoke_model(monkeypatch: pytest.MonkeyPatch) -> None:
    use_dummy_aws(monkeypatch)
    titan = MODEL.model_copy(update={"upstream_model": "amazon.titan-embed-text-v2:0"})
    with Stubber(aws_client("bedrock-runtime", titan)) as stub:
        for text, vector in (("a", [0.5, -0.25]), ("bc", [1.0, 0.0])):
            answer = {"embedding": vector, "inputTextTokenCount": len(text)}
            stub.add_response(
                "invoke_model",
                {"body": body(json.dumps(answer).encode()), "contentType": "application/json"},
                {
                    "modelId": "amazon.titan-embed-text-v2:0",
                    "body": json.dumps({"inputText": text, "dimensions": 256}).encode(),
                    "contentType": "application/json",
                    "accept": ANY,
                },
            )
        payload = {"input": ["a", "bc"], "dimensions": 256, "encoding_format": "base64"}
        result = await BedrockConverse().send(Kind.EMBEDDINGS, payload, titan)
    assert result["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    first = base64.b64decode(result["data"][0]["embedding"])
    assert struct.unpack("<2f", first) == (0.5, -0.25)
    with pytest.raises(InvalidRequest, match="Titan"):
        await BedrockConverse().send(Kind.EMBEDDINGS, {"input": "a"}, MODEL)


def test_registry_needs_no_endpoint_and_the_table_has_the_adapter() -> None:
    assert isinstance(adapter_for(MODEL), BedrockConverse)
    assert MODEL.endpoint == ""
