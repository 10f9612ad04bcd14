"""Chat completion chunks as Responses' semantic stream events: pure, no I/O.

Invariant: events come in OpenAI's order with ``sequence_number`` counting from 0:
``response.created``, ``response.in_progress``; per output item ``output_item.added``
(a message's ``content_part.added`` and ``output_text.delta``s; a function call's
``function_call_arguments.delta``s), then each item's ``.done`` events; last
``response.completed`` (or ``response.incomplete``), or ``error`` then
``response.failed``. ``result`` is the Response as the last event shows it.
"""

from __future__ import annotations

import json
from typing import Any

from edgeroute.types import Json
from edgeroute.wire.responses import (
    failed,
    finished,
    function_call_item,
    message_item,
    usage_of,
)


def encode(event: Json) -> bytes:
    """One event as SSE bytes, with the ``event:`` line OpenAI sends."""
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


class ResponsesStream:
    """Turns one chat stream into Responses events; feed chunks in order."""

    def __init__(self, response: Json) -> None:
        self.result = dict(response, status="in_progress")
        self._seq = 0
        self._items: list[Json] = []  # output items in order, as they opened
        self._text: dict[str, list[str]] = {}  # message item id -> its deltas
        self._calls: dict[int, Json] = {}  # chat tool call index -> its item
        self._finish: Any = None
        self._usage: Json | None = None

    def _event(self, kind: str, **fields: Any) -> Json:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def start(self) -> list[Json]:
        return [
            self._event("response.created", response=self.result),
            self._event("response.in_progress", response=self.result),
        ]

    def _added(self, item: Json) -> Json:
        self._items.append(item)
        return self._event(
            "response.output_item.added", output_index=len(self._items) - 1, item=item
        )

    def _message(self) -> tuple[Json, list[Json]]:
        """The open message item, opening one (two events) if there is none."""
        last = self._items[-1] if self._items else None
        if last is not None and last["type"] == "message":
            return last, []
        item = message_item("", status="in_progress")
        item["content"] = []
        self._text[item["id"]] = []
        part = {"type": "output_text", "text": "", "annotations": []}
        index = len(self._items)
        return item, [
            self._added(item),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
        ]

    def feed(self, chunk: Json) -> list[Json]:
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            return self.fail(str(error.get("code") or "upstream_error"), str(error.get("message")))
        self._usage = usage_of(chunk.get("usage")) or self._usage
        events: list[Json] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                item, opened = self._message()
                events += opened
                self._text[item["id"]].append(delta["content"])
                events.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=self._items.index(item),
                        content_index=0,
                        delta=delta["content"],
                    )
                )
            for call in delta.get("tool_calls") or []:
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def _tool_delta(self, call: Json) -> list[Json]:
        events: list[Json] = []
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            item = function_call_item(
                {"id": call.get("id"), "function": {"name": function.get("name")}}
            )
            item["status"] = "in_progress"
            self._calls[index] = item
            events.append(self._added(item))
        piece = function.get("arguments") or ""
        if piece:
            item["arguments"] += piece
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._items.index(item),
                    delta=piece,
                )
            )
        return events

    def finish(self) -> list[Json]:
        """The closing events, once the chat stream ended well."""
        events: list[Json] = []
        output: list[Json] = []
        incomplete = self._finish == "length"
        for index, item in enumerate(self._items):
            if item["type"] == "message":
                text = "".join(self._text[item["id"]])
                part = {"type": "output_text", "text": text, "annotations": []}
                done = message_item(text, "incomplete" if incomplete else "completed", item["id"])
                where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                events.append(self._event("response.output_text.done", **where, text=text))
                events.append(self._event("response.content_part.done", **where, part=part))
            else:
                done = dict(item, status="completed")
                events.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    )
                )
            output.append(done)
            events.append(self._event("response.output_item.done", output_index=index, item=done))
        self.result = finished(self.result, self._finish, output, self._usage)
        kind = "response.incomplete" if incomplete else "response.completed"
        events.append(self._event(kind, response=self.result))
        return events

    def fail(self, code: str, message: str) -> list[Json]:
        """The closing events of a stream that failed."""
        self.result = failed(self.result, code, message)
        return [
            self._event("error", code=code, message=message, param=None),
            self._event("response.failed", response=self.result),
        ]
