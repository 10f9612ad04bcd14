"""The Responses <-> chat completions translation (wire/responses*.py), both ways, and
the order of the stream's semantic events."""

from __future__ import annotations

from typing import Any

import pytest

from edgeroute.errors import InvalidRequest
from edgeroute.wire.responses import (
    check_supported,
    from_chat,
    input_items,
    output_messages,
    shell,
    to_chat,
)
from edgeroute.wire.responses_stream import ResponsesStream, encode


def _chat(body: dict[str, Any], history: list[Any] | None = None) -> dict[str, Any]:
    return to_chat(body, input_items(body), history or [])


def test_a_string_input_and_instructions_become_system_and_user_messages() -> None:
    chat = _chat(
        {
            "model": "m",
            "input": "hi",
            "instructions": "Be brief.",
            "max_output_tokens": 9,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u1",
        }
    )
    assert chat == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u1",
        "max_tokens": 9,
    }


def test_message_items_with_text_and_images_become_chat_content_parts() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "developer", "content": "Rules."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AAAA",
                        "detail": "low",
                    },
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "A dot."}]},
        ],
    }
    assert _chat(body)["messages"] == [
        {"role": "system", "content": "Rules."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
            ],
        },
        {"role": "assistant", "content": "A dot."},
    ]


def test_function_calls_and_outputs_become_tool_calls_and_tool_messages() -> None:
    body = {
        "model": "m",
        "input": [
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": '{"x":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": "two"},
        ],
        "tools": [
            {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}
        ],
        "tool_choice": {"type": "function", "name": "f"},
    }
    chat = _chat(body)
    assert chat["messages"] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"x":1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "name": "a", "schema": {"type": "object"}, "strict": True},
            {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": True},
            },
        ),
    ],
)
def test_text_format_becomes_response_format(fmt: dict[str, Any], expected: Any) -> None:
    chat = _chat({"model": "m", "input": "x", "text": {"format": fmt}})
    assert chat.get("response_format") == expected


def test_history_goes_between_instructions_and_the_new_input() -> None:
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    chat = _chat({"model": "m", "input": "c", "instructions": "I"}, history)
    assert [m["content"] for m in chat["messages"]] == ["I", "a", "b", "c"]


def test_a_stream_asks_the_upstream_for_usage() -> None:
    chat = _chat({"model": "m", "input": "c", "stream": True})
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "file_search"}]}, None),
        ({"truncation": "auto"}, "truncation"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"prompt": {"id": "p"}}, "prompt"),
        ({"service_tier": "flex"}, "service_tier"),
    ],
)
def test_unsupported_fields_are_refused_naming_them(
    body: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        full = {"model": "m", "input": "x", **body}
        check_supported(full)
        _chat(full)
    assert caught.value.param == (param or "tools[0].type")
    assert caught.value.code == "unsupported_parameter"


def test_a_chat_completion_becomes_a_completed_response() -> None:
    completion = {
        "model": "tiny",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "Let me look.",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    response = from_chat(
        completion, shell("resp_1", {"model": "tiny", "metadata": {"a": "b"}}, "completed")
    )
    assert response["status"] == "completed" and response["metadata"] == {"a": "b"}
    message, call = response["output"]
    assert message["content"][0] == {
        "type": "output_text",
        "text": "Let me look.",
        "annotations": [],
    }
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == (
        "function_call",
        "c1",
        "f",
        "{}",
    )
    assert response["usage"]["input_tokens"] == 3 and response["usage"]["total_tokens"] == 7
    # And back: the output as the next turn's chat messages.
    assert output_messages(response) == [
        {"role": "assistant", "content": "Let me look."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
    ]


def test_a_completion_cut_by_max_tokens_is_incomplete() -> None:
    completion = {"choices": [{"message": {"content": "abc"}, "finish_reason": "length"}]}
    response = from_chat(completion, shell("resp_1", {"model": "m"}, "completed"))
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


def _chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def test_stream_events_come_in_order_with_sequence_numbers() -> None:
    stream = ResponsesStream(shell("resp_1", {"model": "m"}, "in_progress"))
    events = stream.start()
    for chunk in (_chunk("Hel"), _chunk("lo"), _chunk(finish="stop")):
        events += stream.feed(chunk)
    events += stream.feed({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 2}})
    events += stream.finish()
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[6]["text"] == "Hello"
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["total_tokens"] == 4 and stream.result == final
    assert encode(events[0]).startswith(b"event: response.created\ndata: {")


def test_an_error_chunk_ends_the_stream_as_failed() -> None:
    stream = ResponsesStream(shell("resp_1", {"model": "m"}, "in_progress"))
    events = stream.start() + stream.feed(_chunk("x"))
    events += stream.feed({"error": {"message": "upstream broke", "code": "upstream_error"}})
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["error"] == {
        "code": "upstream_error",
        "message": "upstream broke",
    }
    assert stream.result["status"] == "failed"
