"""The one small interface every upstream adapter implements, the types it speaks, and
what every adapter words alike: how a caller's message names the upstream, and the
refusal of a request longer than the model's context.

Callers' messages name an upstream by the registry's model name only; where it runs
(URL, host, AWS resource, region) goes in the error's ``detail``, for the server log.

Adapters take and return the OpenAI wire shape (plain dicts), whatever the
protocol underneath, so the pipeline never branches on protocol.
"""

from __future__ import annotations

from typing import Protocol

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import ContextLengthExceeded
from edgeroute.types import Chunks, Json, Kind


class Upstream(Protocol):
    """A protocol adapter. Raises ``edgeroute.errors.UpstreamError`` subclasses on failure;
    a stream that closes before its last chunk raises ``wire.chunks.stream_ended_early``."""

    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        """One buffered request; returns the OpenAI-shaped response body."""

    def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        """OpenAI-shaped chunks as they arrive.

        The first ``__anext__`` returns only once the upstream accepted the request, so
        failures before the first byte surface there (and can be retried elsewhere).
        """


def upstream_for(model: ModelSpec) -> str:
    """How a caller's message names the upstream: by model name, never by location."""
    return f"Upstream for model '{model.name}'"


def context_exceeded(target: str, reason: str, detail: str) -> ContextLengthExceeded:
    """The upstream refused the request as too long for its context: the caller's to fix.
    ``target`` names what the request does not fit; ``reason`` is the upstream's word
    (about the caller's request, so theirs to read); ``detail`` says where it ran."""
    return ContextLengthExceeded(
        f"The request does not fit {target} ({reason}). Shorten 'messages' or lower 'max_tokens'.",
        param="messages",
        detail=detail,
    )
