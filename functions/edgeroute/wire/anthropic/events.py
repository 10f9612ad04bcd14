"""Chat completion chunks as a Messages stream, in Anthropic's order: ``message_start``,
``ping``, then per content block ``content_block_start``, its deltas (``text_delta``,
``input_json_delta``) and ``content_block_stop``, then ``message_delta`` (stop reason,
usage) and ``message_stop``; or, when the stream fails, an ``error`` event and nothing
after it.

Invariant: at most one block is open at a time, blocks are numbered from 0 in the order
they start, and every block started is stopped before ``message_delta``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator

from edgeroute.types import Json, Usage
from edgeroute.wire.anthropic.errors import stream_error_event
from edgeroute.wire.anthropic.inbound import anthropic_usage, stop_reason
from edgeroute.wire.sse import DONE, SSELines

Event = tuple[str, Json]  # (event name, data)


def encode(event: Event) -> bytes:
    name, data = event
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {body}\n\n".encode()


class MessageEvents:
    """Feed it chat chunks in order; it answers with the Messages events each one makes."""

    def __init__(self, msg_id: str, model: str, stop_sequences: list[str] | None) -> None:
        self.msg_id = msg_id
        self.model = model
        self.stop_sequences = stop_sequences
        self.blocks = 0  # blocks started so far
        self.open: str | None = None  # the open block's kind: "text" or a tool call's key
        self.usage: Usage | None = None
        self.reason: tuple[str | None, str | None] = (None, None)
        self.failed = False
        self.started = False

    def _start(self, model: str) -> list[Event]:
        """``message_start`` and a ``ping``, named after the model that answers (the
        first chunk's: a fallback's or the router's choice, not necessarily the one asked)."""
        self.started = True
        message: Json = {
            "id": self.msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        self.open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.blocks - 1})]

    def _begin(self, key: str, block: Json) -> list[Event]:
        events = self._close()
        self.open = key
        self.blocks += 1
        start = {"type": "content_block_start", "index": self.blocks - 1, "content_block": block}
        return [*events, ("content_block_start", start)]

    def _delta(self, delta: Json) -> Event:
        data = {"type": "content_block_delta", "index": self.blocks - 1, "delta": delta}
        return ("content_block_delta", data)

    def feed(self, chunk: Json) -> list[Event]:
        events = [] if self.started else self._start(str(chunk.get("model") or self.model))
        if "error" in chunk:
            self.failed = True
            return [*events, ("error", stream_error_event(chunk))]
        self.usage = Usage.from_openai(chunk.get("usage")) or self.usage
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.open != "text":
                    events += self._begin("text", {"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or []:
                events += self._tool_call(call)
            if choice.get("finish_reason") is not None:
                self.reason = stop_reason(choice, self.stop_sequences)
        return events

    def _tool_call(self, call: Json) -> list[Event]:
        events: list[Event] = []
        key = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        if self.open != key:
            block: Json = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{self.blocks}",
                "name": function.get("name") or "",
                "input": {},
            }
            events += self._begin(key, block)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return events

    def finish(self) -> list[Event]:
        """The events after the last chunk (the chat stream's ``[DONE]``)."""
        if self.failed:
            return []
        started = [] if self.started else self._start(self.model)
        reason, sequence = self.reason
        usage = anthropic_usage(self.usage or Usage())
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason or "end_turn", "stop_sequence": sequence},
            "usage": usage,
        }
        return [
            *started,
            *self._close(),
            ("message_delta", message_delta),
            ("message_stop", {"type": "message_stop"}),
        ]


async def messages_stream(
    chat_events: AsyncIterator[bytes], translator: MessageEvents
) -> AsyncGenerator[bytes, None]:
    """The pipeline's chat stream (SSE bytes: chunks, then ``[DONE]`` or an error event)
    as a Messages stream. Closing this closes the chat stream, which settles the call."""
    lines = SSELines()
    try:
        async for part in chat_events:
            events: list[Event] = []
            for data in lines.feed(part):
                events += translator.finish() if data == DONE else translator.feed(json.loads(data))
            if events:
                yield b"".join(map(encode, events))
    finally:
        close = getattr(chat_events, "aclose", None)
        if close is not None:
            await close()
