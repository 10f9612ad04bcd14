"""Server-sent events framing, both ways: the bytes of one event, the ``[DONE]`` line,
and ``data:`` payloads reassembled from bytes that may be split anywhere.

Framing only: what a payload means (an OpenAI chunk) is ``wire.chunks``' concern.
"""

from __future__ import annotations

import json

from edgeroute.types import Json

DONE = "[DONE]"  # the payload that ends an OpenAI stream
DONE_EVENT = b"data: [DONE]\n\n"


def encode_event(event: Json) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


class SSELines:
    """Reassembles SSE ``data:`` payloads from byte parts, which may split anywhere."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        # Split bytes, not text: a part may end inside a multi-byte UTF-8 character.
        *complete, self._buffer = (self._buffer + data).split(b"\n")
        return [d for d in map(self._data, complete) if d is not None]

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer, b""
        data = self._data(rest)
        return [data] if data is not None else []

    @staticmethod
    def _data(line: bytes) -> str | None:
        text = line.decode("utf-8", "replace").strip()
        if text.startswith("data:"):
            return text[5:].strip() or None
        if text.startswith("{"):  # servers that stream JSON Lines without SSE framing
            return text
        return None  # blank separators, comments, event: and id: fields
