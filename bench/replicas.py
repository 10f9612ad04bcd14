"""Replica choice: the routing time a request pays to pick one replica of its model
(building the per-call choice and drawing among healthy replicas, weighted, queue- and
load-aware), with 1, 4 and 16 replicas per model."""

from __future__ import annotations

import json
import random
import statistics
import time

from edgeroute.config.registry import ModelSpec, parse_registry
from edgeroute.health.circuits import Health, circuit_key
from edgeroute.pipeline.replicas import ReplicaChoice, ReplicaLoad

ROUNDS = 20_000


def _model(replicas: int) -> ModelSpec:
    if replicas == 1:
        entry = "endpoint: 'http://r0:8000/v1'"
    else:
        listed = ", ".join(
            f"{{endpoint: 'http://r{i}:8000/v1', weight: {1 + i % 3}, version: v{i}}}"
            for i in range(replicas)
        )
        entry = f"replicas: [{listed}]"
    text = f"models:\n  - {{name: pool, tier: small, {entry}}}\n"
    model = parse_registry(text, "bench.yaml").get("pool")
    assert model is not None
    return model


def _conditions(model: ModelSpec) -> tuple[Health, ReplicaLoad]:
    """What a busy instance sees: every replica probed (some queueing), one circuit
    open, requests in flight and first-byte latencies known."""
    health: Health = {}
    load = ReplicaLoad()
    for i, replica in enumerate(model.replica_set):
        health[replica.endpoint] = {"ok": True, "latency_ms": 3.0, "queue_depth": i % 4}
        load.outstanding[circuit_key(replica)] = i % 3
        load.ttfb_s[circuit_key(replica)] = 0.05 * (1 + i % 5)
    if len(model.replica_set) > 1:
        health[circuit_key(model.replica_set[-1])] = {"circuit_open_until": time.time() + 3600}
    return health, load


def measure(replicas: int) -> dict[str, float]:
    model = _model(replicas)
    health, load = _conditions(model)
    rng = random.Random(0)
    now = time.time()
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        ReplicaChoice(health=health, now=now, load=load, rng=rng).pick(model)
        timings.append(time.perf_counter_ns() - started)
    timings.sort()
    return {
        "replicas": replicas,
        "choice_us_p50": round(statistics.median(timings) / 1000, 2),
        "choice_us_p99": round(timings[int(len(timings) * 0.99)] / 1000, 2),
    }


def main() -> None:
    print(json.dumps([measure(n) for n in (1, 4, 16)], indent=2))


if __name__ == "__main__":
    main()
