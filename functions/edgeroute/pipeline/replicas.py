"""Which replica of a model serves an attempt: weighted, health- and queue-aware.

Among a model's healthy replicas (circuit closed, probe not down; no probe data counts
as healthy), one is drawn at random in proportion to its weight, lowered by the queue
its probe last reported (``weight / (1 + queue depth)``), so a canary at ``weight: 5``
beside ``weight: 95`` gets about 5% and a congested server gets less. Replicas whose
effective weights tie share their draw: the one with the fewest requests in flight from
this instance wins, then the one with the lower time to first byte (an EWMA, compared in
steps of 1.5x so noise does not decide), then the draw itself.

A retry goes to a healthy replica this call has not tried yet while one is left. A
model with a single ``endpoint`` is its own only replica and is always returned: the
planning stage decides whether it is down.

Requests in flight and latencies are this instance's own, in memory (``ReplicaLoad``);
the draw takes its randomness from the ``Random`` it is given, so tests can seed it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from edgeroute.config.registry import ModelSpec
from edgeroute.health.availability import endpoint_down_reason
from edgeroute.health.circuits import Health, circuit_key, queue_depth
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.gateway import Gateway
from edgeroute.types import Chunks

_EWMA_ALPHA = 0.2  # weight of the newest time to first byte in a replica's average
_LATENCY_STEP = math.log(1.5)  # latencies within one step of each other tie


class ReplicaLoad:
    """Requests in flight and the EWMA of time to first byte, per replica (its circuit
    key), as this instance has seen them."""

    def __init__(self) -> None:
        self.outstanding: dict[str, int] = {}
        self.ttfb_s: dict[str, float] = {}

    def started(self, replica: ModelSpec) -> float:
        key = circuit_key(replica)
        self.outstanding[key] = self.outstanding.get(key, 0) + 1
        return time.perf_counter()

    def first_byte(self, replica: ModelSpec, started: float) -> None:
        key, seconds = circuit_key(replica), time.perf_counter() - started
        previous = self.ttfb_s.get(key)
        self.ttfb_s[key] = (
            seconds if previous is None else previous + _EWMA_ALPHA * (seconds - previous)
        )

    def finished(self, replica: ModelSpec) -> None:
        key = circuit_key(replica)
        self.outstanding[key] = max(self.outstanding.get(key, 0) - 1, 0)

    async def held(self, replica: ModelSpec, chunks: Chunks) -> Chunks:
        """``chunks``, counting the replica busy until the stream ends however it ends."""
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            self.finished(replica)
            await chunks.aclose()

    def busy(self, replica: ModelSpec) -> tuple[int, float]:
        """Lower is better: requests in flight, then latency in 1.5x steps (unmeasured
        first, so a new replica gets measured)."""
        key = circuit_key(replica)
        ttfb = self.ttfb_s.get(key)
        step = -math.inf if not ttfb else math.floor(math.log(ttfb) / _LATENCY_STEP)
        return self.outstanding.get(key, 0), step


# This process's view; one per process like the upstream connection pool.
LOAD = ReplicaLoad()
_RANDOM = random.Random()


def healthy(replica: ModelSpec, health: Health, now: float) -> bool:
    """Circuit closed and not marked down by the probe; no data is healthy."""
    return endpoint_down_reason(replica, health, now) is None


def effective_weight(replica: ModelSpec, health: Health) -> float:
    """The replica's weight, lowered by the queue its probe last reported."""
    depth = queue_depth(health.get(replica.endpoint)) or 0
    return replica.weight / (1 + max(depth, 0))


@dataclass
class ReplicaChoice:
    """Picks replicas for one call from the health it was routed with."""

    health: Health = field(default_factory=dict)
    now: float = field(default_factory=time.time)
    load: ReplicaLoad = field(default_factory=lambda: LOAD)
    rng: random.Random = field(default_factory=lambda: _RANDOM)

    def pick(self, model: ModelSpec, tried: Collection[ModelSpec] = ()) -> ModelSpec | None:
        """The replica of ``model`` for the next attempt; None when none is healthy."""
        replicas = model.replica_set
        if len(replicas) == 1:
            return replicas[0]
        up = [r for r in replicas if r.weight > 0 and healthy(r, self.health, self.now)]
        done = {id(r) for r in tried}
        candidates = [r for r in up if id(r) not in done] or up
        if not candidates:
            return None
        weights = [effective_weight(r, self.health) for r in candidates]
        drawn = _draw(weights, self.rng.random() * sum(weights))
        peers = [r for r, w in zip(candidates, weights, strict=True) if w == weights[drawn]]
        if len(peers) == 1:
            return candidates[drawn]
        least = min(self.load.busy(r) for r in peers)
        best = [r for r in peers if self.load.busy(r) == least]
        return (
            candidates[drawn]
            if any(r is candidates[drawn] for r in best)
            else self.rng.choice(best)
        )


def _draw(weights: list[float], point: float) -> int:
    """The index whose share of the cumulative weights holds ``point``."""
    for index, weight in enumerate(weights):
        point -= weight
        if point < 0:
            return index
    return max(i for i, w in enumerate(weights) if w > 0)


async def replica_choice(gw: Gateway, call: Call) -> ReplicaChoice:
    """The choice for ``call``, from the health its tenant sees (the snapshot routing
    read, still within its TTL)."""
    health = await gw.health.snapshot(gw.registry.models(), call.principal.tenant)
    return ReplicaChoice(health=health)
