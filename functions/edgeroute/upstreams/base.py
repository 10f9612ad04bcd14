"""The one small interface every upstream adapter implements, and the types it speaks.

Adapters take and return the OpenAI wire shape (plain dicts), whatever the
protocol underneath, so the pipeline never branches on protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from edgeroute.config.registry import ModelSpec
from edgeroute.types import Json, Kind


class Upstream(Protocol):
    """A protocol adapter. Raises ``edgeroute.errors.UpstreamError`` subclasses on failure;
    a stream that closes before its last chunk raises ``wire.chunks.stream_ended_early``."""

    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        """One buffered request; returns the OpenAI-shaped response body."""

    def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> AsyncIterator[Json]:
        """OpenAI-shaped chunks as they arrive.

        The first ``__anext__`` returns only once the upstream accepted the request, so
        failures before the first byte surface there (and can be retried elsewhere).
        """
