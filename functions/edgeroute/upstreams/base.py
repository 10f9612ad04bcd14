"""The one small interface every upstream adapter implements, the types it speaks, and
the refusal every adapter words alike (a request longer than the model's context).

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


def context_exceeded(target: str, detail: str) -> ContextLengthExceeded:
    """The upstream refused the request as too long for its context: the caller's to fix.
    ``target`` names what the request does not fit; ``detail`` is the upstream's word."""
    return ContextLengthExceeded(
        f"The request does not fit {target} ({detail}). Shorten 'messages' or lower 'max_tokens'.",
        param="messages",
    )
