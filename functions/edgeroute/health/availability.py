"""Whether the router may send a target traffic now, read from the health snapshot.

A target is down when its circuit is open (shared or this tenant's) or when the last
unexpired probe sample of its endpoint says ``ok: false``; a model with replicas is down
only when every replica that takes traffic is. No sample means healthy: a
fresh deployment, or one whose prober has not run, routes as before. Samples expire
(``EDGEROUTE_HEALTH_TTL``), so a dead prober never strands an endpoint either.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edgeroute.config.registry import ModelSpec
from edgeroute.health.circuits import Health, circuit_key, circuit_open_until


def iso(epoch: float) -> str:
    """An epoch time as callers read it in reasons: UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def down_reason(model: ModelSpec, health: Health, now: float) -> str | None:
    """Why ``model`` must get no traffic now (``circuit open until …``, ``probe: down
    since …``; for replicas, ``every replica down (…)``), or None when it may."""
    replicas = model.replica_set
    if len(replicas) == 1:
        return endpoint_down_reason(replicas[0], health, now)
    reasons = [endpoint_down_reason(r, health, now) for r in replicas if r.weight > 0]
    if reasons and all(reasons):
        return f"every replica down (first: {reasons[0]})"
    return None


def endpoint_down_reason(model: ModelSpec, health: Health, now: float) -> str | None:
    """``down_reason`` for one endpoint: a model with one, or one replica."""
    until = circuit_open_until(health.get(circuit_key(model)), now)
    if until is not None:
        return f"circuit open until {iso(until)}"
    sample = health.get(model.endpoint) if model.endpoint else None
    if sample is not None and sample.get("ok") is False:
        since = sample.get("down_since") or sample.get("checked_at") or now
        return f"probe: down since {iso(float(since))}"
    return None
