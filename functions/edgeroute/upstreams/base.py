"""The one small interface every upstream adapter implements, and the types it speaks.

Adapters take and return the OpenAI wire shape (plain dicts), whatever the
protocol underneath, so the pipeline never branches on protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import UpstreamError
from edgeroute.types import Json, Kind


def stream_ended_early(where: str) -> UpstreamError:
    """The error every adapter raises when a stream closes before its last chunk."""
    return UpstreamError(
        f"{where} ended the stream before it finished. The response is incomplete; retry it.",
        code="upstream_truncated",
    )


class Upstream(Protocol):
    """A protocol adapter. Raises ``edgeroute.errors.UpstreamError`` subclasses on failure."""

    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        """One buffered request; returns the OpenAI-shaped response body."""

    def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> AsyncIterator[Json]:
        """OpenAI-shaped chunks as they arrive.

        The first ``__anext__`` returns only once the upstream accepted the request, so
        failures before the first byte surface there (and can be retried elsewhere).
        """
