"""The Messages ↔ chat translation (``wire/anthropic``) as pure functions, both ways:
requests, answers, streams and errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edgeroute.errors import (
    AuthenticationFailed,
    EdgerouteError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.wire.anthropic.errors import anthropic_error, stream_error_event
from edgeroute.wire.anthropic.events import MessageEvents, messages_stream
from edgeroute.wire.anthropic.inbound import chat_request, message_from_chat
from edgeroute.wire.anthropic.outbound import ChatChunks, chat_from_message, messages_request
from edgeroute.wire.anthropic.schema import MessagesRequest
from edgeroute.wire.sse import DONE_EVENT, encode_event

PNG = "iVBORw0KGgo="


def messages(**body: Any) -> MessagesRequest:
    return MessagesRequest.model_validate({"model": "m", "max_tokens": 64, **body})


def test_a_full_request_becomes_chat() -> None:
    request = messages(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "t1", "name": "zoom", "input": {"level": 2}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "no"}],
                        "is_error": True,
                    },
                ],
            },
        ],
        tools=[{"name": "zoom", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stream=True,
    )
    chat = chat_request(request)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "zoom", "arguments": '{"level": 2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "Error: no"},
    ]
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "zoom", "parameters": {"type": "object"}}}
    ]
    assert (chat["tool_choice"], chat["parallel_tool_calls"]) == ("auto", False)
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("anthropic", "chat"), [("any", "required"), ("none", "none"), ("auto", "auto")]
)
def test_tool_choice(anthropic: str, chat: str) -> None:
    request = messages(messages=[{"role": "user", "content": "x"}], tool_choice={"type": anthropic})
    assert chat_request(request)["tool_choice"] == chat


def _chat_answer(finish: str, **choice: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": "hi", **choice.pop("message", {})}
    return {
        "id": "c",
        "model": "served",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


@pytest.mark.parametrize(
    ("finish", "extra", "reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),
        ("stop", {"stop_reason": "other"}, "end_turn", None),  # not one the caller sent
        ("length", {}, "max_tokens", None),
        ("tool_calls", {}, "tool_use", None),
        ("content_filter", {}, "refusal", None),
    ],
)
def test_stop_reasons(
    finish: str, extra: dict[str, Any], reason: str, sequence: str | None
) -> None:
    message = message_from_chat(_chat_answer(finish, **extra), "msg_1", ["END"])
    assert (message["stop_reason"], message["stop_sequence"]) == (reason, sequence)
    assert message["usage"] == {"input_tokens": 3, "output_tokens": 2}
    assert message["model"] == "served" and message["id"] == "msg_1"


def test_tool_arguments_that_are_not_an_object_are_the_upstreams_fault() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    with pytest.raises(UpstreamError):
        message_from_chat(_chat_answer("tool_calls", message={"tool_calls": [call]}), "m", None)


def _chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "x", "model": "served", "choices": choices, **extra}


def _names(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in events]


def test_events_keep_anthropics_order_and_numbering() -> None:
    translator = MessageEvents("msg_1", "asked", ["END"])
    events = []
    for chunk in [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hi"}),
        _chunk(
            {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}]}
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
        _chunk(
            {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}
        ),
        _chunk({}, "tool_calls"),
        _chunk(usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}),
    ]:
        events += translator.feed(chunk)
    events += translator.finish()
    assert _names(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["model"] == "served"  # the model that answered
    starts = [data for name, data in events if name == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [
        (0, "text"),
        (1, "tool_use"),
        (2, "tool_use"),
    ]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "a", "name": "f", "input": {}}
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"x":'}
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 9, "output_tokens": 4}


def test_a_failed_stream_ends_with_an_error_event_only() -> None:
    translator = MessageEvents("msg_1", "asked", None)
    events = translator.feed(_chunk({"content": "Hi"}))
    events += translator.feed({"error": {"message": "gone", "code": "upstream_unavailable"}})
    events += translator.finish()
    assert _names(events)[-1] == "error"
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "gone"},
    }
    assert "message_stop" not in _names(events)


def test_an_empty_answer_still_starts_and_stops_the_message() -> None:
    events = MessageEvents("msg_1", "asked", None).finish()
    assert _names(events) == ["message_start", "ping", "message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == "asked"


def test_the_byte_stream_may_split_anywhere() -> None:
    source = (
        encode_event(_chunk({"content": "Bon"}))
        + encode_event(_chunk({"content": "jour"}, "stop"))
        + DONE_EVENT
    )

    async def parts() -> AsyncIterator[bytes]:
        for i in range(0, len(source), 7):
            yield source[i : i + 7]

    async def collect() -> str:
        out = b""
        async for part in messages_stream(parts(), MessageEvents("msg_1", "m", None)):
            out += part
        return out.decode()

    text = asyncio.run(collect())
    deltas = [
        json.loads(line[6:])["delta"].get("text", "")
        for line in text.splitlines()
        if line.startswith("data: ") and '"content_block_delta"' in line
    ]
    assert "".join(deltas) == "Bonjour" and text.rstrip().endswith('{"type":"message_stop"}')


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("x"), 400, "invalid_request_error"),
        (AuthenticationFailed("x"), 401, "authentication_error"),
        (NotFound("x"), 404, "not_found_error"),
        (PayloadTooLarge("x"), 413, "request_too_large"),
        (RateLimited("x"), 429, "rate_limit_error"),
        (UpstreamError("x"), 500, "api_error"),
        (UpstreamUnavailable("x"), 529, "overloaded_error"),
        (UpstreamTimeout("x"), 504, "timeout_error"),
    ],
)
def test_error_statuses(error: EdgerouteError, status: int, kind: str) -> None:
    assert anthropic_error(error) == (
        status,
        {"type": "error", "error": {"type": kind, "message": "x"}},
    )


def test_stream_errors_default_to_api_error() -> None:
    assert stream_error_event({"error": {"message": "cut", "code": "upstream_truncated"}})[
        "error"
    ] == {
        "type": "api_error",
        "message": "cut",
    }


# ---- outbound: chat to a Messages upstream -------------------------------------------------


def test_chat_becomes_messages_and_back() -> None:
    """A Messages request through chat_request and messages_request comes back the same."""
    original: dict[str, Any] = {
        "model": "m",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
            },
        ],
        "tools": [{"name": "f", "description": "F.", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f"},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_k": 5,
        "metadata": {"user_id": "u"},
    }
    chat = chat_request(MessagesRequest.model_validate(original))
    back = messages_request(chat, "m", "m", None)
    assert {**back, "messages": back["messages"][:1]} == {
        **original,
        "messages": original["messages"][:1],
    }
    assert back["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}
    ]
    assert back["messages"][2:] == original["messages"][2:]


def test_messages_request_details() -> None:
    body = messages_request(
        {
            "messages": [
                {"role": "developer", "content": "A."},
                {"role": "system", "content": "B."},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        },
                        {"id": "2", "type": "function", "function": {"name": "f", "arguments": ""}},
                    ],
                },
                {"role": "tool", "tool_call_id": "1", "content": "one"},
                {"role": "tool", "tool_call_id": "2", "content": "two"},
            ],
            "stop": "END",
            "parallel_tool_calls": False,
        },
        "m",
        "wire-m",
        None,
    )
    assert body["system"] == "A.\n\nB." and body["model"] == "wire-m"
    assert body["max_tokens"] == 4096 and body["stop_sequences"] == ["END"]
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    ]
    assert [b["tool_use_id"] for b in body["messages"][2]["content"]] == ["1", "2"]  # one turn
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"seed": 1}, "seed"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "[]"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages",
        ),
    ],
)
def test_what_messages_cannot_take_is_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        messages_request({"messages": [{"role": "user", "content": "x"}], **extra}, "m", "m", 10)
    assert refused.value.param == param


def test_a_message_becomes_a_chat_completion() -> None:
    completion = chat_from_message(
        {
            "type": "message",
            "content": [
                {"type": "text", "text": "Counting 1 2"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},
            ],
            "stop_reason": "stop_sequence",
            "stop_sequence": "3",
            "usage": {"input_tokens": 5, "cache_read_input_tokens": 2, "output_tokens": 4},
        },
        "registry-name",
    )
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] == "3"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert completion["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert completion["model"] == "registry-name"


def test_messages_events_become_chat_chunks() -> None:
    chunks = ChatChunks("registry-name")
    out: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 8, "output_tokens": 1}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ": 1}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 6},
        },
        {"type": "message_stop"},
    ]
    for event in events:
        out += chunks.feed(event)
    assert chunks.done
    deltas = [c["choices"][0]["delta"] for c in out if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""} and deltas[1] == {"content": "Hi"}
    assert deltas[2]["tool_calls"][0] == {
        "index": 0,
        "id": "t",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5]) == '{"a": 1}'
    assert out[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[-1]["usage"] == {"prompt_tokens": 8, "completion_tokens": 6, "total_tokens": 14}
    assert {c["model"] for c in out} == {"registry-name"}
