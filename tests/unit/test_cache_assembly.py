"""Assembling streamed chunks into the completion a cache hit serves."""

from __future__ import annotations

from edgeroute.pipeline.cache import assemble, cacheable_stream
from edgeroute.types import Json


def _chunk(delta: Json, finish: str | None = None) -> Json:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_tool_call_fragments_merge_into_one_call() -> None:
    chunks = [
        _chunk({"role": "assistant", "content": None}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "weather", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        _chunk({}, "tool_calls"),
    ]  # fmt: skip
    message = assemble(chunks)["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function",
         "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
    ]  # fmt: skip
    assert assemble(chunks)["choices"][0]["finish_reason"] == "tool_calls"


def test_text_is_concatenated_and_logprobs_are_not_cached() -> None:
    chunks = [_chunk({"content": "Hel"}), _chunk({"content": "lo"}, "stop")]
    assert assemble(chunks)["choices"][0]["message"]["content"] == "Hello"
    assert cacheable_stream(chunks)
    with_logprobs = [
        {**chunks[0], "choices": [{**chunks[0]["choices"][0], "logprobs": {"content": []}}]}
    ]
    assert not cacheable_stream(with_logprobs)
