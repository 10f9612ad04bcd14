"""What an executed call produced, one hierarchy from the execute stage to the caller:
the model that answered, after how many attempts and why, and the answer, whole
(``Buffered``) or as a stream (``Streamed``).

The execute stage fills in the answer; ``run`` adds what the caller needs next (a
cache fill to finish, the SSE bytes to send). A cache hit is an outcome of 0 attempts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from edgeroute.config.registry import ModelSpec
from edgeroute.pipeline.call import Call, classification_headers
from edgeroute.types import Chunks, Json, Usage


@dataclass
class Outcome:
    """What answered and how: the model, how many attempts it took, and why."""

    model: ModelSpec
    attempts: int
    reason: str

    async def headers(self, call: Call) -> dict[str, str]:
        headers = await classification_headers(call)
        headers |= {
            "x-request-id": call.request_id,
            "x-edgeroute-model": self.model.name,
            "x-edgeroute-tier": self.model.tier,
            "x-edgeroute-attempts": str(self.attempts),
            "x-edgeroute-route-reason": self.reason,
            "x-edgeroute-cache": call.cache_status,
        }
        if self.model.replica_label:  # which replica answered, by label, never its URL
            headers["x-edgeroute-replica"] = self.model.replica_label
        if call.admission is not None:
            headers.update(call.admission.headers())
        if call.degraded:
            headers["x-edgeroute-degraded"] = "true"
            headers["x-edgeroute-degraded-reason"] = call.degraded
        # Header values must be Latin-1; reasons quote model names, which may not be.
        return {k: v.encode("ascii", "replace").decode() for k, v in headers.items()}


@dataclass
class Buffered(Outcome):
    body: Json = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cache_fill: tuple[str, bytes] | None = None  # (key, entry) for the shared cache


@dataclass
class Streamed(Outcome):
    first: Json = field(default_factory=dict)  # the upstream's first chunk; none for a hit
    rest: Chunks | None = None  # the upstream's chunks after the first
    events: AsyncIterator[bytes] | None = None  # what the caller receives: SSE bytes
