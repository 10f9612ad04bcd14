"""The response cache: an in-process LRU bounded in bytes, then the store with a TTL.

The cache key covers the tenant (no answer is ever served to another tenant), the
resolved model, the route and the normalized request. Only deterministic requests
are cached unless asked: temperature 0 or a ``seed`` (embeddings always are). The
``x-edgeroute-cache`` request header can ``force`` or ``bypass`` that.

A streamed answer is stored as its chunks plus the completion they assemble into,
so a streamed hit replays the same chunks and a buffered hit gets the completion.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import InvalidRequest
from edgeroute.store.base import Store
from edgeroute.types import Json, Kind
from edgeroute.wire.chunks import (
    answer_choice,
    choice_text,
    chunk,
    completion_object,
    delta_choice,
    is_chat,
    usage_chunk,
    without_usage,
)

log = logging.getLogger("edgeroute.pipeline.cache")

CacheMode = Literal["auto", "force", "bypass"]
# Fields that change how an answer is delivered or attributed, not what it says.
_DELIVERY_FIELDS = frozenset({"stream", "stream_options", "user", "model"})


def cache_mode(header: str | None) -> CacheMode:
    value = (header or "auto").strip().lower()
    if value in ("auto", "force", "bypass"):
        return value  # type: ignore[return-value]  # `in` a tuple does not narrow to the Literal
    raise InvalidRequest(
        f"Invalid 'x-edgeroute-cache' header '{header}': use force, bypass, or leave it out.",
        param="x-edgeroute-cache",
    )


def is_deterministic(kind: Kind, payload: Json) -> bool:
    if kind is Kind.EMBEDDINGS:
        return True
    return payload.get("temperature") == 0 or payload.get("seed") is not None


def cache_key(tenant: str, model: ModelSpec, kind: Kind, payload: Json) -> str:
    """The model is named as the caller and the upstream know it, so a registry that now
    sends the name to another upstream model (a live reload) does not answer from the
    previous one's entries."""
    content = {k: v for k, v in payload.items() if k not in _DELIVERY_FIELDS}
    named = [tenant, model.name, model.wire_name, kind.value, content]
    blob = json.dumps(named, sort_keys=True, separators=(",", ":"))
    return "v2:" + hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    completion: Json
    chunks: list[Json] | None = None  # present when the answer was streamed

    def encode(self) -> bytes:
        return json.dumps({"completion": self.completion, "chunks": self.chunks}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        data = json.loads(raw)
        return cls(completion=data["completion"], chunks=data.get("chunks"))


def assemble(chunks: list[Json]) -> Json:
    """The completion a list of chat or text chunks adds up to."""
    first = chunks[0] if chunks else {}
    chat = is_chat(first)
    choices: dict[int, Json] = {}
    usage = None
    for event in chunks:
        usage = event.get("usage") or usage
        for choice in event.get("choices") or ():
            index = int(choice.get("index", 0))
            into = choices.setdefault(index, {"text": "", "finish_reason": None})
            into["text"] += choice_text(choice)
            for call in (choice.get("delta") or {}).get("tool_calls") or ():
                _merge_tool_call(into.setdefault("tool_calls", {}), call)
            into["finish_reason"] = choice.get("finish_reason") or into["finish_reason"]
    out_choices: list[Json] = []
    for index in sorted(choices):
        item = choices[index]
        message: Json = {"role": "assistant", "content": item["text"] or None}
        if calls := [item["tool_calls"][i] for i in sorted(item.get("tool_calls", {}))]:
            message["tool_calls"] = calls
        out_choices.append(answer_choice(chat, message, item["finish_reason"], index))
    completion = chunk({**first, "object": completion_object(chat, chunk=False)}, out_choices)
    if usage is not None:
        completion["usage"] = usage
    return completion


def _merge_tool_call(calls: dict[int, Json], delta: Json) -> None:
    """Streams send a tool call in fragments sharing an index: id, type and name first,
    then the arguments piece by piece."""
    index = int(delta.get("index", len(calls)))
    into = calls.setdefault(index, {"id": None, "type": "function", "function": {}})
    if delta.get("id"):
        into["id"] = delta["id"]
    if delta.get("type"):
        into["type"] = delta["type"]
    function = delta.get("function") or {}
    if function.get("name"):
        into["function"]["name"] = function["name"]
    if "arguments" in function:
        into["function"]["arguments"] = into["function"].get("arguments", "") + str(
            function["arguments"] or ""
        )


def cacheable_stream(chunks: list[Json]) -> bool:
    """Log probabilities do not survive assembly; such streams are not cached."""
    return not any(
        isinstance(choice, dict) and choice.get("logprobs")
        for chunk in chunks
        for choice in chunk.get("choices") or ()
    )


class ResponseCache:
    """L1 (this process, LRU by bytes) in front of L2 (the store, shared by instances)."""

    def __init__(self, store: Store, *, ttl_s: float, max_bytes: int) -> None:
        self._store = store
        self._ttl = ttl_s
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def _l1_get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= time.time():
            self._evict(key)
            return None
        self._items.move_to_end(key)
        return item[1]

    def _evict(self, key: str) -> None:
        _, raw = self._items.pop(key)
        self._bytes -= len(raw)

    def _l1_put(self, key: str, raw: bytes, expires_at: float) -> None:
        if len(raw) > self._max_bytes // 4:
            return  # one entry may not crowd out the rest
        if key in self._items:
            self._evict(key)
        self._items[key] = (expires_at, raw)
        self._bytes += len(raw)
        while self._bytes > self._max_bytes:
            self._evict(next(iter(self._items)))

    async def get(self, key: str) -> Entry | None:
        raw = self._l1_get(key)
        if raw is None:
            try:
                raw = await self._store.cache_get(key)
            except Exception:  # a cache that cannot be read is a miss, not a failure
                log.warning("cache read failed for %s; treating it as a miss", key, exc_info=True)
                return None
            if raw is None:
                return None
            self._l1_put(key, raw, time.time() + min(self._ttl, 60))
        try:
            return Entry.decode(raw)
        except (ValueError, KeyError):
            log.warning("cache entry %s is unreadable; treating it as a miss", key)
            return None

    def put_local(self, key: str, entry: Entry) -> bytes:
        """Fill this process's level at once (before the answer leaves), so the very
        next identical request here is a hit; returns the encoded entry."""
        raw = entry.encode()
        self._l1_put(key, raw, time.time() + self._ttl)
        return raw

    async def put(self, key: str, entry: Entry) -> bool:
        return await self.put_shared(key, self.put_local(key, entry))

    async def put_shared(self, key: str, raw: bytes) -> bool:
        """Fill the store's level, shared by every instance (after the answer left)."""
        stored = await self._store.cache_put(key, raw, time.time() + self._ttl)
        if not stored:
            log.warning(
                "cache entry of %d bytes exceeds the store's item limit; not shared", len(raw)
            )
        return stored


def replay_chunks(entry: Entry, model: str, want_usage: bool) -> list[Json]:
    """The chunks to send for a streamed hit."""
    source = entry.chunks if entry.chunks is not None else _chunks_from_completion(entry.completion)
    chunks: list[Json] = []
    for stored in source:
        shown = stored if want_usage else without_usage(stored)
        if shown is not None:
            chunks.append({**shown, "model": model})
    has_usage = any(c.get("usage") for c in chunks)
    if want_usage and not has_usage and entry.completion.get("usage"):
        last = chunks[-1] if chunks else {}
        chunks.append(usage_chunk(last, entry.completion["usage"], model))
    return chunks


def _chunks_from_completion(completion: Json) -> list[Json]:
    chat = is_chat(completion)
    head = {**completion, "object": completion_object(chat, chunk=True)}
    chunks: list[Json] = []
    for choice in completion.get("choices") or ():
        if chat:
            message = choice.get("message") or {}
            delta: Json = {"role": "assistant", "content": message.get("content")}
            if message.get("tool_calls"):
                delta["tool_calls"] = message["tool_calls"]
        else:
            delta = {"content": choice.get("text", "")}
        finish = choice.get("finish_reason")
        chunks.append(chunk(head, [delta_choice(chat, delta, finish, choice.get("index", 0))]))
    return chunks
