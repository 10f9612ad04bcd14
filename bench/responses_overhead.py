"""The Responses API's added latency: the same request as chat completions and as a
Responses request, through one `edgeroute serve` (SQLite store) against the instant
upstream, side by side in one run.

Sequential, on one keep-alive connection, alternating the three forms so machine noise
hits them alike: chat completions; Responses with ``store: false`` (the translation
both ways alone); Responses stored (the default: plus one store write). What the
Responses API adds is the difference of the medians (and of the 99th percentiles).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from tests.support.gateway import GatewayProcess

from bench.gateway_overhead import pct, start_upstream

REQUESTS = int(os.environ.get("BENCH_RESPONSES", "1000"))
PROMPT = "Say hello."
FORMS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": (
        "/v1/chat/completions",
        {"model": "instant", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8},
    ),
    "responses_unstored": (
        "/v1/responses",
        {"model": "instant", "input": PROMPT, "max_output_tokens": 8, "store": False},
    ),
    "responses_stored": (
        "/v1/responses",
        {"model": "instant", "input": PROMPT, "max_output_tokens": 8},
    ),
}


def _measure(gateway: str, key: str) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in FORMS}
    headers = {"Authorization": f"Bearer {key}", "x-edgeroute-cache": "bypass"}
    with httpx.Client(base_url=gateway, timeout=10, headers=headers) as client:
        for _ in range(50):  # warm every path
            for path, body in FORMS.values():
                client.post(path, json=body).raise_for_status()
        for _ in range(REQUESTS):
            for name, (path, body) in FORMS.items():
                t0 = time.perf_counter()
                client.post(path, json=body).raise_for_status()
                timings[name].append((time.perf_counter() - t0) * 1000)
    return timings


def main() -> None:
    upstream, upstream_url = start_upstream()
    workdir = Path(tempfile.mkdtemp(prefix="edgeroute-bench-responses-"))
    registry = workdir / "models.yaml"
    model = {"name": "instant", "endpoint": upstream_url, "tier": "small", "capabilities": ["chat"]}
    registry.write_text(yaml.safe_dump({"models": [model]}))
    env = {
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(workdir / "edgeroute.db"),
        "EDGEROUTE_CLASSIFY": "auto",
    }
    gateway = GatewayProcess(env, workdir).start()
    try:
        key = str(gateway.create_key("bench")["api_key"])
        timings = _measure(gateway.url, key)
    finally:
        gateway.stop()
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(10)
    chat_p50 = statistics.median(timings["chat"])
    chat_p99 = pct(timings["chat"], 0.99)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "requests_each": REQUESTS,
    }
    for name, values in timings.items():
        result[name] = {
            "p50_ms": round(statistics.median(values), 3),
            "p99_ms": round(pct(values, 0.99), 3),
            "added_p50_ms": round(statistics.median(values) - chat_p50, 3),
            "added_p99_ms": round(pct(values, 0.99) - chat_p99, 3),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
