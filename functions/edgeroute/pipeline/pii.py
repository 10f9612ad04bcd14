"""The PII stage: what an upstream may see of the caller's personal data and secrets.

Per key (``ApiKey.policy.pii``, else ``EDGEROUTE_PII_DEFAULT``): ``allow`` forwards the
request as it came; ``block`` refuses a request that holds any value with 400
``pii_detected``, naming the classes; ``mask`` forwards a copy with each value swapped
for a typed placeholder and puts the values back in the answer, whole or streamed.

Invariant: in ``mask`` mode no value the recognizers find reaches an upstream or the
shared cache (which is keyed and filled with what the upstream saw); the caller gets
their own values back. Requests every target of which answers in-process (``protocol:
edge``) never leave the gateway, so no mode applies to them.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from edgeroute.config.registry import ModelSpec, Protocol
from edgeroute.errors import PiiDetected
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.results import Buffered, Streamed
from edgeroute.privacy.masking import Masker, StreamRestorer
from edgeroute.privacy.recognizers import Scanner
from edgeroute.settings import Settings
from edgeroute.types import Json, Kind
from edgeroute.wire.chunks import chunk, delta_choice, is_chat
from edgeroute.wire.sse import DONE_EVENT, encode_event

_EVENT_PREFIX = b"data: {"


def pii_mode(call: Call, settings: Settings) -> str:
    return call.principal.policy.pii or settings.pii_default


def _text_slots(kind: Kind, payload: Json) -> list[tuple[Any, Any]]:
    """(container, key) of every string the upstream reads as text: chat messages'
    content and text parts, earlier tool calls' arguments, the completions prompt, and
    embeddings input."""
    slots: list[tuple[Any, Any]] = []

    def strings(container: Any, key: Any) -> None:
        value = container[key]
        if isinstance(value, str):
            slots.append((container, key))
        elif isinstance(value, list):
            slots.extend((value, i) for i, item in enumerate(value) if isinstance(item, str))

    if kind is not Kind.CHAT:
        if kind.prompt_param in payload:
            strings(payload, kind.prompt_param)
        return slots
    for message in payload.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            slots.append((message, "content"))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    slots.append((part, "text"))
        for tool_call in message.get("tool_calls") or ():
            function = tool_call.get("function") if isinstance(tool_call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                slots.append((function, "arguments"))
    return slots


def _leaves_process(targets: list[ModelSpec]) -> bool:
    return any(model.protocol is not Protocol.EDGE for model in targets)


def _block(kind: Kind, payload: Json, scanner: Scanner) -> None:
    slots = _text_slots(kind, payload)
    found = sorted({f.kind for container, key in slots for f in scanner.find(container[key])})
    if found:
        raise PiiDetected(
            f"'{kind.prompt_param}' holds personal data or secrets ({', '.join(found)}), "
            "which this API key may not send "
            "to a model. Remove them, or use a key whose PII mode is 'mask' (values are "
            "replaced before the model sees them).",
            param=kind.prompt_param,
        )


def _mask(kind: Kind, payload: Json, masker: Masker) -> Json:
    masked = copy.deepcopy(payload)
    slots = _text_slots(kind, masked)
    texts = masker.mask_all([container[key] for container, key in slots])
    if masker.unmasked:  # never forward what masking could not make safe
        raise PiiDetected(
            f"'{kind.prompt_param}' holds personal data or secrets "
            f"({', '.join(masker.unmasked)}) packed so tightly together that they could not "
            "all be masked. Separate the values with spaces or remove them.",
            param=kind.prompt_param,
        )
    for (container, key), text in zip(slots, texts, strict=True):
        container[key] = text
    return masked


async def protect(call: Call, targets: list[ModelSpec], settings: Settings) -> Masker | None:
    """Apply the key's PII mode to the call before it is sent: refuse it (``block``), or
    swap ``call.payload`` for a masked copy and return the masker that restores the
    answer (``mask``). The scan runs on a worker thread; its cost is linear in the text."""
    mode = pii_mode(call, settings)
    if mode == "allow" or not _leaves_process(targets):
        return None
    scanner = Scanner(settings.pii_phone_region)
    if mode == "block":
        await asyncio.to_thread(_block, call.kind, call.payload, scanner)
        return None
    masker = Masker(scanner)
    call.payload = await asyncio.to_thread(_mask, call.kind, call.payload, masker)
    call.pii_classes = masker.classes
    return masker if masker.originals else None


# ---- the way back ----------------------------------------------------------------------------


def _restore_message(message: Any, restore: Callable[[str], str]) -> Any:
    if not isinstance(message, dict):
        return message
    out = dict(message)
    if isinstance(out.get("content"), str):
        out["content"] = restore(out["content"])
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [_restore_tool_call(c, restore) for c in out["tool_calls"]]
    return out


def _restore_tool_call(tool_call: Any, restore: Callable[[str], str]) -> Any:
    function = tool_call.get("function") if isinstance(tool_call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return tool_call
    return {**tool_call, "function": {**function, "arguments": restore(function["arguments"])}}


def restore_body(body: Json, masker: Masker) -> Json:
    """A buffered answer with the values back (a new dict; ``body`` is left as it is)."""
    choices = []
    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            choices.append(choice)
            continue
        restored = dict(choice)
        if isinstance(restored.get("text"), str):
            restored["text"] = masker.restore(restored["text"])
        if "message" in restored:
            restored["message"] = _restore_message(restored["message"], masker.restore)
        choices.append(restored)
    return {**body, "choices": choices} if "choices" in body else body


@dataclass
class _ChunkRestorer:
    """Restores a stream's chunks: one ``StreamRestorer`` per choice and text field."""

    masker: Masker
    held: dict[tuple[int, str, int], StreamRestorer] = field(default_factory=dict)
    last: Json = field(default_factory=dict)

    def _feed(self, where: tuple[int, str, int], text: str) -> str:
        restorer = self.held.setdefault(where, StreamRestorer(self.masker))
        return restorer.feed(text)

    def _flush(self, index: int) -> dict[tuple[str, int], str]:
        rest = {}
        for where in [w for w in self.held if w[0] == index]:
            if text := self.held.pop(where).flush():
                rest[where[1:]] = text
        return rest

    def restore(self, event: Json) -> Json:
        self.last = event
        choices = event.get("choices")
        if not isinstance(choices, list):
            return event
        return {**event, "choices": [self._choice(c) for c in choices]}

    def _choice(self, choice: Any) -> Any:
        if not isinstance(choice, dict):
            return choice
        index = int(choice.get("index") or 0)
        out = dict(choice)
        if isinstance(out.get("text"), str):
            out["text"] = self._feed((index, "text", 0), out["text"])
        delta = out.get("delta")
        if isinstance(delta, dict):
            delta = out["delta"] = dict(delta)
            if isinstance(delta.get("content"), str):
                delta["content"] = self._feed((index, "content", 0), delta["content"])
            if isinstance(delta.get("tool_calls"), list):
                delta["tool_calls"] = [self._tool_call(index, c) for c in delta["tool_calls"]]
        if out.get("finish_reason"):
            _with_rest(out, self._flush(index))
        return out

    def _tool_call(self, index: int, tool_call: Any) -> Any:
        function = tool_call.get("function") if isinstance(tool_call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return tool_call
        where = (index, "arguments", int(tool_call.get("index") or 0))
        arguments = self._feed(where, function["arguments"])
        return {**tool_call, "function": {**function, "arguments": arguments}}

    def leftovers(self) -> Json | None:
        """A last chunk with what is still held back (a stream that never finished)."""
        chat = is_chat(self.last)
        choices = []
        for index in sorted({w[0] for w in self.held}):
            choice = delta_choice(chat, {}, None, index)
            _with_rest(choice, self._flush(index))
            choices.append(choice)
        return chunk(self.last, choices) if choices else None


def _with_rest(choice: Json, rest: dict[tuple[str, int], str]) -> None:
    """Append held-back text to a choice (text, delta content or tool-call arguments)."""
    for (name, tool_index), text in rest.items():
        if name == "text":
            choice["text"] = str(choice.get("text") or "") + text
            continue
        delta = choice["delta"] = dict(choice.get("delta") or {})
        if name == "content":
            delta["content"] = str(delta.get("content") or "") + text
        else:
            calls = list(delta.get("tool_calls") or ())
            calls.append({"index": tool_index, "function": {"arguments": text}})
            delta["tool_calls"] = calls


async def _restore_events(events: AsyncIterator[bytes], masker: Masker) -> AsyncIterator[bytes]:
    restorer = _ChunkRestorer(masker)
    try:
        async for event in events:
            if event == DONE_EVENT:
                if (last := restorer.leftovers()) is not None:
                    yield encode_event(last)
            elif event.startswith(_EVENT_PREFIX):
                event = encode_event(restorer.restore(json.loads(event[6:])))
            yield event
    finally:  # the relay settles the call when it closes: close it with this
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def restore(result: Buffered | Streamed, masker: Masker | None) -> Buffered | Streamed:
    """The outcome as the caller sees it: their own values where placeholders were."""
    if masker is None:
        return result
    if isinstance(result, Buffered):
        return replace(result, body=restore_body(result.body, masker))
    assert result.events is not None
    return replace(result, events=_restore_events(result.events, masker))
