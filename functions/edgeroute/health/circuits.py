"""Live endpoint health as every instance sees it: probe samples and open circuits,
read from the store through a short in-memory TTL, and passive circuit breaking.

Probe samples (health, queue depth) are per endpoint: a server. Circuits are per
target, the endpoint and the model name sent to it: one server may serve several
models, and a model that fails must not take the others down with it.

Timeouts and 5xx seen by any instance count against the target in one shared
counter per window, read as a sliding window (the previous window's count weighted by
its overlap); at ``failures_to_open`` the circuit opens in the store for every
instance until ``cool_down_s`` has passed. After that the next request is let
through as a trial (half-open); if it fails too, the count is still over the limit
and the circuit opens again at once.
"""

from __future__ import annotations

import time
from typing import Any

from edgeroute.config.policy import Circuit
from edgeroute.config.registry import ModelSpec
from edgeroute.store.base import Store

Health = dict[str, dict[str, Any]]


def circuit_key(model: ModelSpec) -> str:
    """Where a target's circuit is kept in the store's health records."""
    return f"{model.endpoint}#{model.wire_name}"


def health_keys(models: list[ModelSpec]) -> list[str]:
    """Every record the router reads: each endpoint's sample and each target's circuit."""
    return sorted({m.endpoint for m in models} | {circuit_key(m) for m in models})


def circuit_open_until(sample: dict[str, Any] | None, now: float) -> float | None:
    until = (sample or {}).get("circuit_open_until")
    return float(until) if until is not None and float(until) > now else None


def queue_depth(sample: dict[str, Any] | None) -> int | None:
    depth = (sample or {}).get("queue_depth")
    return int(depth) if isinstance(depth, int | float) else None


class HealthView:
    def __init__(self, store: Store, ttl_s: float) -> None:
        self._store = store
        self._ttl = ttl_s
        self._fetched_at = 0.0
        self._health: Health = {}

    async def snapshot(self, endpoints: list[str]) -> Health:
        """Health per endpoint; one store read per TTL per instance."""
        now = time.monotonic()
        if now - self._fetched_at >= self._ttl:
            self._health = await self._store.get_health(sorted(set(endpoints)))
            self._fetched_at = now
        return self._health

    async def record_failure(self, model: ModelSpec, circuit: Circuit) -> bool:
        """Count a failure against the target; True when this opened its circuit."""
        now = time.time()
        window = int(now // circuit.window_s) * circuit.window_s
        key = circuit_key(model)
        counter = f"circuit#{key}"
        result = await self._store.add_to_counter(
            counter, window, 1, None, window + 2 * circuit.window_s
        )
        failures = result.value
        if failures < circuit.failures_to_open:
            # A sliding window: the previous window's count, weighted by how much of it
            # the last window_s still covers, so a burst across a boundary still counts.
            previous = await self._store.get_counter(counter, window - circuit.window_s)
            failures += round(previous * (1 - (now - window) / circuit.window_s))
        if failures < circuit.failures_to_open:
            return False
        await self._store.open_circuit(key, now + circuit.cool_down_s)
        sample = self._health.setdefault(key, {})
        sample["circuit_open_until"] = now + circuit.cool_down_s  # this instance knows now
        return True
