"""What a request body needs of a model, read from the body alone.

Invariant: named models (``pipeline.resolve``) and the router (``pipeline.autoroute``)
decide what a request needs here, the same way, so a model the router may pick is one a
request naming it would be allowed to use.
"""

from __future__ import annotations

from typing import Any

from edgeroute.types import Capability, Json, Kind

_IMAGE_PARTS = frozenset({"image_url", "input_image"})
# Parts a model must declare it takes: sent to one that does not, an upstream answers 500
# (counted against its shared circuit for everyone) instead of a clear 400 to the caller.
_PART_NEEDS = {"input_audio": Capability.AUDIO, "file": Capability.FILES}
_JSON_FORMATS = frozenset({"json_object", "json_schema"})


def has_image_parts(payload: Json) -> bool:
    """True when any message carries an image content part."""
    return any(
        isinstance(part, dict) and part.get("type") in _IMAGE_PARTS
        for message in _messages(payload)
        for part in _parts(message)
    )


def required_capabilities(kind: Kind, payload: Json) -> set[Capability]:
    """The route's capability, plus vision for image parts, audio and files for those
    parts, tools when ``tools`` are given, and JSON mode for a ``json_object`` or
    ``json_schema`` response_format."""
    needed = {kind.capability}
    if has_image_parts(payload):
        needed.add(Capability.VISION)
    for message in _messages(payload):
        for part in _parts(message):
            if isinstance(part, dict) and part.get("type") in _PART_NEEDS:
                needed.add(_PART_NEEDS[part["type"]])
    if payload.get("tools"):
        needed.add(Capability.TOOLS)
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in _JSON_FORMATS:
        needed.add(Capability.JSON)
    return needed


def _messages(payload: Json) -> list[Any]:
    messages = payload.get("messages")
    return messages if isinstance(messages, list) else []


def _parts(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, list) else []
