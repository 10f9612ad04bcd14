"""OpenAI completions and their chunks, the one home for their shape: building them (id,
object, created, model, choices), the final usage chunk, reading chunks from a stream's
``data:`` payloads, and the text an answer carries (for token estimates when none are
reported).

Chunks and answers are plain dicts, as every adapter and the pipeline pass them; these
helpers never mutate the dicts they are given.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from edgeroute.errors import UpstreamError
from edgeroute.types import Json, Usage
from edgeroute.wire.sse import DONE
from edgeroute.wire.tokens import estimate_tokens

_HEAD = ("id", "object", "created", "model")


# ---- building ------------------------------------------------------------------------------


def completion_object(chat: bool, *, chunk: bool) -> str:
    """The ``object`` of a completion or of one of its chunks (text chunks share it)."""
    if not chat:
        return "text_completion"
    return "chat.completion.chunk" if chunk else "chat.completion"


def is_chat(answer: Json) -> bool:
    return str(answer.get("object") or "").startswith("chat")


def new_head(chat: bool, model: str, *, chunk: bool) -> Json:
    """id, object, created and model for an answer an adapter builds itself."""
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
        "object": completion_object(chat, chunk=chunk),
        "created": int(time.time()),
        "model": model,
    }


def delta_choice(chat: bool, delta: Json, finish: str | None = None, index: int = 0) -> Json:
    """One streamed choice: a chat ``delta``, or the ``text`` of a text completion."""
    if chat:
        return {"index": index, "delta": delta, "finish_reason": finish}
    return {"index": index, "text": delta.get("content") or "", "finish_reason": finish}


def answer_choice(chat: bool, message: Json, finish: str | None, index: int = 0) -> Json:
    """One buffered choice: a chat ``message``, or the ``text`` of a text completion."""
    if chat:
        return {"index": index, "message": message, "finish_reason": finish}
    text = message.get("content") or ""
    return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}


def chunk(like: Json, choices: list[Json], model: str | None = None) -> Json:
    """A chunk with ``like``'s id, object and created (any chunk or head will do), and
    ``model`` when given, else ``like``'s."""
    head = {key: like.get(key) for key in _HEAD}
    if model is not None:
        head["model"] = model
    return {**head, "choices": choices}


def usage_chunk(like: Json, usage: Json, model: str | None = None) -> Json:
    """The last chunk of a stream that reports usage: no choices, only ``usage``."""
    return {**chunk(like, [], model), "usage": usage}


def without_usage(event: Json) -> Json | None:
    """The chunk as a caller that did not ask for usage sees it: without ``usage``, and
    nothing at all for a chunk that carried only usage."""
    if event.get("usage") is None:
        return event
    if not event.get("choices"):
        return None
    return {k: v for k, v in event.items() if k != "usage"}


def tool_arguments(arguments: Any) -> Json | None:
    """A tool call's ``arguments`` (JSON text; blank means none) as the object they must
    be, or None when they are not one."""
    try:
        value = json.loads(arguments or "{}") if isinstance(arguments, str | None) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ---- text, for estimates -------------------------------------------------------------------


def choice_text(choice: Any) -> str:
    """The text one choice carries: a text completion's ``text``, a chunk's ``delta`` or
    a buffered chat ``message`` content."""
    if not isinstance(choice, dict):
        return ""
    part = choice.get("delta") or choice.get("message")
    content = part.get("content") if isinstance(part, dict) else None
    return str(choice.get("text") or content or "")


def text_of(answer: Json) -> str:
    """All text of a buffered body or of one chunk, choices concatenated."""
    return "".join(choice_text(choice) for choice in answer.get("choices") or ())


def estimated_usage(prompt_tokens: int, answers: Iterable[Json]) -> Usage:
    """Usage for an upstream that reported none: completion tokens estimated from text."""
    text = "".join(text_of(answer) for answer in answers)
    return Usage(prompt_tokens, estimate_tokens(text), estimated=True)


# ---- reading a stream ----------------------------------------------------------------------


def stream_ended_early(where: str, located: str) -> UpstreamError:
    """The error every adapter raises when a stream closes before its last chunk.
    ``where`` names the upstream for the caller; ``located`` says where it runs (the log's)."""
    return UpstreamError(
        f"{where} ended the stream before it finished. The response is incomplete; retry it.",
        code="upstream_truncated",
        detail=f"{located}: the stream closed before its last chunk",
    )


def _an_object(where: str, located: str) -> Callable[[Any], Json]:
    def check(decoded: Any) -> Json:
        if not isinstance(decoded, dict):
            raise UpstreamError(
                f"{where} sent a stream event that is not a JSON object. The response is "
                "incomplete; retry it.",
                code="upstream_malformed",
                detail=f"{located}: {str(decoded)[:200]!r}",
            )
        return decoded

    return check


class ChunkReader:
    """Reads the ``data:`` payloads of one OpenAI event stream into chunks.

    ``where`` names the upstream in the caller's errors ("Upstream for model 'x'");
    ``located`` says where it runs, in their detail only; ``check`` turns a decoded
    event into a chunk or raises (by default: it must be a JSON object). A malformed
    event or an ``error`` event raises ``UpstreamError``, the upstream's words in its
    detail (they may name hosts or hold a stack trace).
    """

    def __init__(
        self, where: str, located: str, check: Callable[[Any], Json] | None = None
    ) -> None:
        self.where = where
        self.located = located
        self._check = check or _an_object(where, located)
        self._finished: set[int] = set()  # indexes of the choices that sent a finish_reason
        self.done = False  # the upstream sent [DONE]

    def read(self, data: str) -> Json | None:
        """The chunk in one payload; None for a blank one and for ``[DONE]``."""
        text = data.strip()
        if text == DONE:
            self.done = True
            return None
        if not text:
            return None
        try:
            decoded = json.loads(text)
        except ValueError as exc:
            raise UpstreamError(
                f"{self.where} sent a malformed stream event. The response is incomplete; "
                "retry it.",
                code="upstream_malformed",
                detail=f"{self.located}: {text[:200]!r}",
            ) from exc
        if isinstance(decoded, dict) and "error" in decoded:
            error = decoded["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamError(
                f"{self.where} failed mid-stream. The response is incomplete; retry it.",
                code="upstream_stream_error",
                detail=f"{self.located}: {message}",
            )
        event = self._check(decoded)
        for choice in event.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self._finished.add(int(choice.get("index", 0)))
        return event

    def end(self) -> None:
        """The stream closed without ``[DONE]``: it must at least have finished a choice."""
        if not self._finished:
            raise stream_ended_early(self.where, self.located)
