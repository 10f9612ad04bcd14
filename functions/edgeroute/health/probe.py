"""Probe every upstream endpoint's health and queue depth, and publish it in the store.

The scheduled HealthProbeFunction (and ``edgeroute probe``) call ``probe_all``; the
router reads the samples with ``store.get_health``. One sample per distinct endpoint:
``GET /health`` (its status and latency say whether the server is up) and
``GET /metrics`` (Prometheus text; the waiting-request gauge says how congested it
is). llama.cpp, vLLM and TGI all serve both at the server root, next to ``/v1``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import httpx

from edgeroute.config.registry import ModelSpec, Protocol, Registry, upstream_specs
from edgeroute.store.base import Store
from edgeroute.upstreams import credentials
from edgeroute.upstreams.http import close_shared_client, shared_client

# How long a sample stays valid: a few probe periods, so one missed run does not
# blank the router's view, while a dead prober does not leave stale health forever.
DEFAULT_TTL_S = 180.0
# Probes run off the request path, but a schedule fires every minute: a hung
# endpoint must not hold the whole run.
DEFAULT_TIMEOUT_S = 3.0

# Gauges of requests waiting for a slot, per server (summed over label sets);
# in-flight gauges are reported alongside when the server has them.
QUEUE_GAUGES = ("llamacpp:requests_deferred", "vllm:num_requests_waiting", "tgi_queue_size")
RUNNING_GAUGES = (
    "llamacpp:requests_processing",
    "vllm:num_requests_running",
    "tgi_batch_current_size",
)


@dataclass(frozen=True)
class Sample:
    ok: bool
    latency_ms: float | None
    queue_depth: float | None
    running: float | None
    checked_at: float
    error: str | None
    down_since: float | None = None  # when the endpoint went down (None while up)

    def as_dict(self) -> dict[str, Any]:
        """Every field, as the store keeps a sample."""
        return asdict(self)


def parse_prometheus(text: str) -> dict[str, float]:
    """Sample values by metric name from Prometheus text format, summed over labels.

    Enough of the format for gauges and counters: comments and blank lines are
    skipped, ``name{labels} value [timestamp]`` is read, label values may hold
    spaces and braces inside their quotes. Lines that do not parse are ignored.
    """
    values: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        brace = line.find("{")
        if brace != -1:
            name = line[:brace]
            rest = _after_labels(line, brace)
            if rest is None:
                continue
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not name or not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        if math.isnan(value):
            continue
        values[name] = values.get(name, 0.0) + value
    return values


def _after_labels(line: str, start: int) -> str | None:
    """The text after the ``{...}`` label block that opens at ``start``."""
    quoted = escaped = False
    for i in range(start + 1, len(line)):
        ch = line[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "}" and not quoted:
            return line[i + 1 :]
    return None


def server_root(endpoint: str) -> str:
    """``http://h:8000/v1`` -> ``http://h:8000``: where /health and /metrics live."""
    root = endpoint.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _first(values: dict[str, float], names: tuple[str, ...]) -> float | None:
    for name in names:
        if name in values:
            return values[name]
    return None


def _headers(model: ModelSpec) -> dict[str, str]:
    # Servers started with an API key may guard /metrics with it too.
    try:
        return credentials.resolve(model)
    except Exception:  # a missing credential must not stop the health check itself
        return {}


async def probe_endpoint(model: ModelSpec, timeout_s: float = DEFAULT_TIMEOUT_S) -> Sample:
    """One endpoint's sample. Never raises: a failure is a sample with ``ok=False``."""
    client = shared_client()
    root = server_root(model.endpoint)
    headers = _headers(model)
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0))
    checked_at = time.time()
    started = time.perf_counter()
    try:
        health = await asyncio.wait_for(
            client.get(root + "/health", headers=headers, timeout=timeout), timeout_s
        )
    except Exception as exc:
        return Sample(False, None, None, None, checked_at, _describe(exc))
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    # A server with no /health route (404, 405) answered: it is up as far as we can
    # tell, and must not be routed around for it. 5xx (llama.cpp loading) is down.
    ok = health.status_code in (200, 404, 405)
    error = None if ok else f"GET /health answered {health.status_code}"
    queue = running = None
    try:
        resp = await asyncio.wait_for(
            client.get(root + "/metrics", headers=headers, timeout=timeout), timeout_s
        )
        if resp.status_code == 200:
            values = parse_prometheus(resp.text)
            queue = _first(values, QUEUE_GAUGES)
            running = _first(values, RUNNING_GAUGES)
    except Exception:  # metrics are optional (llama.cpp serves them only with --metrics)
        pass
    return Sample(ok, latency_ms, queue, running, checked_at, error)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "health check timed out"
    return f"{type(exc).__name__}: {exc}".strip()[:300]


def endpoints(registry: Registry) -> dict[str, ModelSpec]:
    """Each distinct upstream endpoint (each replica's) once, with the first model that
    uses it (for its credential). Edge models run in-process and have none."""
    found: dict[str, ModelSpec] = {}
    for model in upstream_specs(registry.models()):
        if model.protocol is Protocol.EDGE or not model.endpoint:
            continue
        found.setdefault(model.endpoint, model)
    return found


async def probe_all(
    registry: Registry,
    store: Store,
    *,
    ttl_s: float = DEFAULT_TTL_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, dict[str, Any]]:
    """Probe every endpoint concurrently, write each sample, return them by endpoint.
    A sample that is down keeps the ``down_since`` of the one before it, if that was
    down too: the router says since when."""
    targets = endpoints(registry)
    samples, before = await asyncio.gather(
        asyncio.gather(*(probe_endpoint(m, timeout_s) for m in targets.values())),
        store.get_health(list(targets)),
    )
    results = {
        endpoint: _with_down_since(sample, before.get(endpoint)).as_dict()
        for endpoint, sample in zip(targets, samples, strict=True)
    }
    now = time.time()
    await asyncio.gather(
        *(store.put_health(ep, data, expires_at=now + ttl_s) for ep, data in results.items())
    )
    return results


def _with_down_since(sample: Sample, previous: dict[str, Any] | None) -> Sample:
    if sample.ok:
        return sample
    was_down = previous is not None and previous.get("ok") is False
    since = (previous or {}).get("down_since") if was_down else None
    return replace(sample, down_since=float(since) if since else sample.checked_at)


def probe_command(registry: Registry, store: Store, *, ttl_s: float = DEFAULT_TTL_S) -> int:
    """``edgeroute probe``: probe once, print one JSON line per endpoint; exit 1 when
    any endpoint is down, so scripts and cron can alert on it."""

    async def run() -> dict[str, dict[str, Any]]:
        try:
            return await probe_all(registry, store, ttl_s=ttl_s)
        finally:
            await close_shared_client()
            await store.close()

    results = asyncio.run(run())
    for endpoint, sample in results.items():
        print(json.dumps({"endpoint": endpoint, **sample}))
    if not results:
        print("no upstream endpoints in the registry", file=sys.stderr)
    return 0 if all(s["ok"] for s in results.values()) else 1
