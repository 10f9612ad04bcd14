"""The OpenAI wire helpers every adapter, the cache and the relay share: SSE framing,
reading chunks from ``data:`` payloads, building chunks and answers, the text of an
answer, and request validation errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from edgeroute.errors import UpstreamError
from edgeroute.types import Usage
from edgeroute.wire.chunks import (
    ChunkReader,
    answer_choice,
    choice_text,
    chunk,
    completion_object,
    delta_choice,
    estimated_usage,
    is_chat,
    new_head,
    stream_ended_early,
    text_of,
    usage_chunk,
    without_usage,
)
from edgeroute.wire.schemas import ChatCompletionRequest
from edgeroute.wire.sse import DONE_EVENT, SSELines, encode_event
from edgeroute.wire.validation import validation_error

HOST = "http://10.0.7.3:8000/v1"  # where the upstream runs: the server log's to know
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}


def _delta(text: str, finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return chunk(HEAD, [delta_choice(True, {"content": text}, finish, index)])


# ---- SSE framing ----------------------------------------------------------------------------


def test_encode_event_is_one_compact_data_line() -> None:
    event = encode_event({"a": 1, "b": "é"})
    assert event == b'data: {"a":1,"b":"\\u00e9"}\n\n'
    assert json.loads(event.removeprefix(b"data: ")) == {"a": 1, "b": "é"}
    assert DONE_EVENT == b"data: [DONE]\n\n"


def test_sse_lines_ignore_comments_and_keep_json_lines() -> None:
    lines = SSELines()
    assert lines.feed(b': ping\r\nevent: message\r\ndata: {"a"') == []
    assert lines.feed(b": 1}\r\n\r\n") == ['{"a": 1}']
    assert lines.feed(b'{"b": 2}\n{"c"') == ['{"b": 2}']
    assert lines.flush() == ['{"c"']


def test_sse_lines_join_a_character_split_across_parts() -> None:
    raw = 'data: {"t": "ü"}\n'.encode()
    cut = raw.index("ü".encode()) + 1
    lines = SSELines()
    assert lines.feed(raw[:cut]) == []
    assert lines.feed(raw[cut:]) == ['{"t": "ü"}']


# ---- reading chunks -------------------------------------------------------------------------


def test_reader_parses_chunks_and_stops_at_done() -> None:
    reader = ChunkReader("Upstream for model 'm'", HOST)
    assert reader.read(json.dumps(_delta("Hi"))) == _delta("Hi")
    assert reader.read("  ") is None and not reader.done
    assert reader.read(" [DONE] ") is None and reader.done


def _private(error: UpstreamError, *words: str) -> None:
    """The upstream's words and its location are in the detail, for the log, never in
    the caller's message."""
    assert error.detail is not None
    for word in (HOST, *words):
        assert word in error.detail
        assert word not in error.message and word not in json.dumps(error.body())


def test_reader_names_the_upstream_in_a_malformed_line() -> None:
    reader = ChunkReader("Upstream for model 'm'", HOST)
    with pytest.raises(UpstreamError, match="Upstream for model 'm' sent a malformed") as caught:
        reader.read('{"choices": [')
    assert caught.value.code == "upstream_malformed"
    _private(caught.value, '{"choices": [')
    with pytest.raises(UpstreamError, match="not a JSON object") as caught:
        reader.read("[1, 2]")
    assert caught.value.code == "upstream_malformed"
    _private(caught.value, "[1, 2]")


def test_reader_raises_an_error_event_keeping_its_message_for_the_log() -> None:
    reader = ChunkReader("Upstream for model 'm'", HOST)
    with pytest.raises(UpstreamError, match="failed mid-stream") as caught:
        reader.read('{"error": {"message": "out of memory"}}')
    assert caught.value.code == "upstream_stream_error"
    _private(caught.value, "out of memory")
    with pytest.raises(UpstreamError, match="failed mid-stream") as caught:
        reader.read('{"error": "Traceback (most recent call last)"}')
    _private(caught.value, "Traceback")


def test_reader_end_needs_a_finished_choice() -> None:
    reader = ChunkReader("Upstream for model 'm'", HOST)
    reader.read(json.dumps(_delta("Hi")))
    with pytest.raises(UpstreamError, match="ended the stream before it finished") as caught:
        reader.end()
    assert caught.value.code == "upstream_truncated"
    _private(caught.value)
    reader.read(json.dumps(_delta("", "stop", index=1)))
    reader.end()


def test_reader_applies_the_adapters_check() -> None:
    def check(decoded: Any) -> dict[str, Any]:
        if "choices" not in decoded:
            raise UpstreamError("not OpenAI", code="upstream_malformed")
        return dict(decoded)

    reader = ChunkReader("Upstream for model 'e'", HOST, check)
    with pytest.raises(UpstreamError, match="not OpenAI"):
        reader.read('{"token": {"text": "Hi"}}')


def test_stream_ended_early_says_what_to_do() -> None:
    error = stream_ended_early("Upstream for model 'x'", HOST)
    assert error.code == "upstream_truncated"
    assert str(error.body()["error"]["message"]).startswith(
        "Upstream for model 'x' ended the stream before it finished"
    )
    _private(error)


# ---- building -------------------------------------------------------------------------------


def test_new_heads_name_their_object() -> None:
    chat = new_head(True, "m", chunk=True)
    assert chat["id"].startswith("chatcmpl-") and chat["object"] == "chat.completion.chunk"
    assert chat["model"] == "m" and isinstance(chat["created"], int)
    text = new_head(False, "m", chunk=False)
    assert text["id"].startswith("cmpl-") and text["object"] == "text_completion"
    assert completion_object(True, chunk=False) == "chat.completion"
    assert completion_object(False, chunk=True) == "text_completion"
    assert is_chat(chat) and not is_chat(text) and not is_chat({})


def test_chat_and_text_chunks() -> None:
    assert _delta("Hi", "stop") == {
        **HEAD,
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}],
    }
    text = chunk({**HEAD, "extra": 1}, [delta_choice(False, {"content": "Hi"})], model="n")
    assert text == {
        **HEAD,
        "model": "n",
        "choices": [{"index": 0, "text": "Hi", "finish_reason": None}],
    }
    assert delta_choice(False, {"role": "assistant", "content": None})["text"] == ""


def test_answer_choices() -> None:
    message = {"role": "assistant", "content": "Paris."}
    assert answer_choice(True, message, "stop") == {
        "index": 0,
        "message": message,
        "finish_reason": "stop",
    }
    assert answer_choice(False, message, "length", 2) == {
        "index": 2,
        "text": "Paris.",
        "finish_reason": "length",
        "logprobs": None,
    }


def test_usage_chunk_has_no_choices() -> None:
    usage = Usage(3, 2).to_openai()
    assert usage_chunk(_delta("Hi"), usage) == {**HEAD, "choices": [], "usage": usage}
    assert usage_chunk({}, usage, "m") == {
        "id": None,
        "object": None,
        "created": None,
        "model": "m",
        "choices": [],
        "usage": usage,
    }


def test_without_usage_hides_usage_from_callers_that_did_not_ask() -> None:
    usage = Usage(3, 2).to_openai()
    assert without_usage(usage_chunk(HEAD, usage)) is None
    assert without_usage({**_delta("Hi"), "usage": usage}) == _delta("Hi")
    plain = {**_delta("Hi"), "usage": None}
    assert without_usage(plain) is plain


# ---- text, for estimates --------------------------------------------------------------------


def test_text_of_chunks_and_bodies() -> None:
    assert text_of(_delta("Hi")) == "Hi"
    body = {"choices": [{"message": {"content": "Hel"}}, {"text": "lo"}, "junk"]}
    assert text_of(body) == "Hello"
    assert text_of({"choices": None}) == ""
    assert choice_text({"delta": {"tool_calls": []}}) == ""
    assert choice_text({"message": "not a message"}) == ""


def test_estimated_usage_counts_the_text_of_every_answer() -> None:
    usage = estimated_usage(5, [_delta("abcd"), _delta("efgh")])
    assert usage == Usage(5, 2, estimated=True)


# ---- validation -----------------------------------------------------------------------------


def test_validation_error_names_the_missing_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate({"model": "m"})
    error = validation_error(caught.value)
    assert error.param == "messages" and error.code == "missing_required_parameter"
    assert "Missing required parameter 'messages'" in str(error.body()["error"]["message"])
