"""Gateway overhead: the same chat request sent straight to an instant local upstream and
through `edgeroute serve` (one uvicorn worker, SQLite store), side by side in one run.

Sequential: N requests one after another on one keep-alive connection, alternating
direct and gateway so machine noise hits both alike; added latency is the difference
of the medians (and of the 99th percentiles). Concurrent: C clients for D seconds
each way; requests per second and latency percentiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
from tests.support.gateway import GatewayProcess, free_port

from bench.compare.systems import instant_registry

SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "2000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
CONCURRENT_SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
BODY = {
    "model": "instant",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 8,
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_upstream() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fault_upstream"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    return proc, line.strip().rsplit(" ", 1)[-1]


def _sequential(direct: str, gateway: str, key: str) -> dict[str, float]:
    d_ms: list[float] = []
    g_ms: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=10) as dc, httpx.Client(timeout=10, headers=headers) as gc:
        for _ in range(50):  # warm both paths
            dc.post(direct + "/chat/completions", json=BODY)
            gc.post(gateway + "/v1/chat/completions", json=BODY)
        for _ in range(SEQUENTIAL):
            t0 = time.perf_counter()
            dc.post(direct + "/chat/completions", json=BODY).raise_for_status()
            t1 = time.perf_counter()
            gc.post(gateway + "/v1/chat/completions", json=BODY).raise_for_status()
            t2 = time.perf_counter()
            d_ms.append((t1 - t0) * 1000)
            g_ms.append((t2 - t1) * 1000)
    return {
        "direct_p50_ms": statistics.median(d_ms),
        "gateway_p50_ms": statistics.median(g_ms),
        "added_p50_ms": statistics.median(g_ms) - statistics.median(d_ms),
        "direct_p99_ms": pct(d_ms, 0.99),
        "gateway_p99_ms": pct(g_ms, 0.99),
        "added_p99_ms": pct(g_ms, 0.99) - pct(d_ms, 0.99),
    }


async def _load(url: str, headers: dict[str, str]) -> dict[str, float]:
    latencies: list[float] = []
    stop_at = time.perf_counter() + CONCURRENT_SECONDS
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                async with session.post(url, json=BODY) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return {
        "rps": len(latencies) / CONCURRENT_SECONDS,
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 0.99),
    }


@contextlib.contextmanager
def serving() -> Iterator[tuple[str, GatewayProcess, str]]:
    """An instant upstream and `edgeroute serve` with one model, ``instant``, on it:
    (the upstream's URL, the gateway, a key for it); both stopped on leaving."""
    upstream, upstream_url = start_upstream()
    workdir = Path(tempfile.mkdtemp(prefix="edgeroute-bench-"))
    registry = instant_registry(upstream_url, workdir / "models.yaml")
    env = {
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(workdir / "edgeroute.db"),
    }
    gateway = GatewayProcess(env, workdir)
    gateway.port = free_port()
    gateway.url = f"http://127.0.0.1:{gateway.port}"
    gateway.start()
    try:
        yield upstream_url, gateway, str(gateway.create_key("bench")["api_key"])
    finally:
        gateway.stop()
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(10)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    with serving() as (upstream_url, gateway, key):
        seq = _sequential(upstream_url, gateway.url, key)
        direct = asyncio.run(_load(upstream_url + "/chat/completions", {}))
        through = asyncio.run(
            _load(gateway.url + "/v1/chat/completions", {"Authorization": f"Bearer {key}"})
        )
    result = {
        "machine": machine(),
        "sequential_requests": SEQUENTIAL,
        "concurrency": CONCURRENCY,
        "concurrent_seconds": CONCURRENT_SECONDS,
        "sequential": seq,
        "concurrent_direct": direct,
        "concurrent_gateway": through,
    }
    print(json.dumps(result, indent=2))
