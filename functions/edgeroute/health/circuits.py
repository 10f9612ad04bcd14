"""Live endpoint health as every instance sees it: probe samples and open circuits,
read from the store through a short in-memory TTL, and passive circuit breaking.

Probe samples (health, queue depth) are per endpoint: a server. Circuits are per
target, the endpoint and the model name sent to it: one server may serve several
models, and a model that fails must not take the others down with it. A model's
replicas have their own endpoints, so each has its own sample and circuit.

Failures count in counters shared by every instance, read as a sliding window (the
previous window's count weighted by its overlap), and are attributed by cause, so one
tenant cannot take a model away from the others:

- the upstream could not be reached, timed out, said it is overloaded, or refused
  edgeroute's credential (or edgeroute could not read it): nobody's request caused
  that, so it counts against the shared circuit; a 429 that names its Retry-After
  opens the shared circuit until then at once;
- the upstream answered with a failure (5xx, a truncated or malformed answer): the
  request may have caused it. It counts against the tenant's own circuit, which opens
  for that tenant only; the shared circuit opens on these only when at least two
  tenants failed in the current window;
- the upstream refused the request (4xx): the caller's doing; it never counts.

At ``failures_to_open`` a circuit opens in the store for every instance until
``cool_down_s`` has passed. After that the next request is let through as a trial
(half-open); if it fails too, the count is still over the limit and the circuit opens
again at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from edgeroute.config.policy import Circuit
from edgeroute.config.registry import ModelSpec, upstream_specs
from edgeroute.errors import (
    EdgerouteError,
    InvalidRequest,
    UpstreamAuthFailed,
    UpstreamRejected,
    UpstreamThrottled,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.store.base import Store

Health = dict[str, dict[str, Any]]


def circuit_key(model: ModelSpec) -> str:
    """Where a target's circuit is kept in the store's health records."""
    return f"{model.endpoint}#{model.wire_name}"


def tenant_circuit_key(key: str, tenant: str) -> str:
    """Where one tenant's own view of a target's circuit is kept."""
    return f"{key}#tenant={tenant}"


def health_keys(models: list[ModelSpec]) -> list[str]:
    """Every record the router reads: each endpoint's sample and each target's circuit."""
    return sorted({m.endpoint for m in models} | {circuit_key(m) for m in models})


def circuit_open_until(sample: dict[str, Any] | None, now: float) -> float | None:
    until = (sample or {}).get("circuit_open_until")
    return float(until) if until is not None and float(until) > now else None


def queue_depth(sample: dict[str, Any] | None) -> int | None:
    depth = (sample or {}).get("queue_depth")
    return int(depth) if isinstance(depth, int | float) else None


Cause = Literal["upstream", "answer"]


def failure_cause(error: EdgerouteError) -> Cause | None:
    """Whose failure this is: the upstream's alone, possibly the request's (an answer
    that failed), or the caller's (refused: not counted)."""
    if isinstance(error, UpstreamRejected | InvalidRequest):
        return None
    if isinstance(error, UpstreamUnavailable | UpstreamTimeout | UpstreamAuthFailed):
        return "upstream"
    return "answer"


# The longest Retry-After honoured: a junk value must not take a target away for days.
_LONGEST_WAIT_S = 3600.0
_VIEWS_KEPT = 4096  # tenants whose view an instance keeps; past it they are re-read


class HealthView:
    def __init__(self, store: Store, ttl_s: float) -> None:
        self._store = store
        self._ttl = ttl_s
        # Per tenant: when its view was read, and the view (shared and own circuits).
        self._views: dict[str, tuple[float, Health]] = {}

    def reset(self, ttl_s: float) -> None:
        """Forget the cached views (the registry or the policy changed: new circuits, a
        new TTL); the next request of each tenant reads the store again."""
        self._ttl = ttl_s
        self._views = {}

    async def snapshot(self, models: list[ModelSpec], tenant: str) -> Health:
        """Health per endpoint and circuit as ``tenant`` sees it: the shared circuits,
        with its own opened ones on top; one store read per tenant per TTL per instance."""
        models = upstream_specs(models)
        now = time.monotonic()
        cached = self._views.get(tenant)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        keys = health_keys(models)
        own = {tenant_circuit_key(circuit_key(m), tenant): circuit_key(m) for m in models}
        read = await self._store.get_health([*keys, *sorted(own)])
        view = {k: v for k, v in read.items() if k not in own}
        for record, key in own.items():
            until = read.get(record, {}).get("circuit_open_until")
            if until is not None:
                _open_in(view, key, until)
        if len(self._views) >= _VIEWS_KEPT:
            self._views.clear()
        self._views[tenant] = (now, view)
        return view

    async def record_failure(
        self, model: ModelSpec, circuit: Circuit, error: EdgerouteError, tenant: str
    ) -> bool:
        """Count a failure by its cause; True when this opened a circuit (the tenant's
        own or the shared one)."""
        cause = failure_cause(error)
        if cause is None:
            return False
        now = time.time()
        window = int(now // circuit.window_s) * circuit.window_s
        key = circuit_key(model)
        if cause == "upstream":
            failures = await self._failures(f"circuit#{key}", circuit, window, now)
            if isinstance(error, UpstreamThrottled) and error.retry_after_s > 0:
                await self._open(key, None, now + min(error.retry_after_s, _LONGEST_WAIT_S))
                return True
            if failures < circuit.failures_to_open:
                return False
            await self._open(key, None, now + circuit.cool_down_s)
            return True
        expires = window + 2 * circuit.window_s
        own_counter = "circuit#" + tenant_circuit_key(key, tenant)
        first_of_tenant = await self._store.add_to_counter(own_counter, window, 1, None, expires)
        if first_of_tenant.value == 1:  # its first failure this window: one more tenant
            tenants = (
                await self._store.add_to_counter(f"circuit#{key}#tenants", window, 1, None, expires)
            ).value
        else:
            tenants = await self._store.get_counter(f"circuit#{key}#tenants", window)
        own, answers = await asyncio.gather(
            self._failures(own_counter, circuit, window, now, first_of_tenant.value),
            self._failures(f"circuit#{key}#answers", circuit, window, now),
        )
        until = now + circuit.cool_down_s
        if tenants >= 2 and answers >= circuit.failures_to_open:
            await self._open(key, None, until)
            return True
        if own >= circuit.failures_to_open:
            await self._open(key, tenant, until)
            return True
        return False

    async def _failures(
        self, counter: str, circuit: Circuit, window: int, now: float, counted: int | None = None
    ) -> int:
        """Add this failure to ``counter`` (unless ``counted`` says it is in already) and
        return the failures over the last ``window_s``."""
        if counted is None:
            expires = window + 2 * circuit.window_s
            counted = (await self._store.add_to_counter(counter, window, 1, None, expires)).value
        if counted >= circuit.failures_to_open:
            return counted
        # A sliding window: the previous window's count, weighted by how much of it the
        # last window_s still covers, so a burst across a boundary still counts.
        previous = await self._store.get_counter(counter, window - circuit.window_s)
        return counted + round(previous * (1 - (now - window) / circuit.window_s))

    async def _open(self, key: str, tenant: str | None, until: float) -> None:
        """Open the shared circuit (``tenant`` None) or one tenant's, in the store and in
        this instance's views at once."""
        await self._store.open_circuit(
            key if tenant is None else tenant_circuit_key(key, tenant), until
        )
        for holder, (_, view) in self._views.items():
            if tenant is None or holder == tenant:
                _open_in(view, key, until)


def _open_in(view: Health, key: str, until: float) -> None:
    sample = view.setdefault(key, {})
    sample["circuit_open_until"] = max(float(until), float(sample.get("circuit_open_until", 0)))
