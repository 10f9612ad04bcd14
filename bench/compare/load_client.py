"""The one client for every system: aiohttp, in its own process, so its cost never lands
on the system measured. ``python -m bench.compare.load_client SPEC_JSON`` prints one JSON
object of latency lists and rates.

Spec: ``url``, ``headers``, ``seconds`` (each phase's length) and ``phases``, any of
``sequential`` (one request after another: latencies), ``stream`` (sequential streamed
requests: time to the first byte of the body), ``closed:C`` (C connections, each sending
as soon as its last answer came: requests per second), ``open:R`` (R requests per second
on a fixed schedule, latency counted from when each was due, so a slow system cannot
hide its queue: the 99th percentile).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

BODY = {"model": "instant", "messages": [{"role": "user", "content": "Say hello."}]}
STREAM_BODY = {**BODY, "stream": True}
TIMEOUT_S = 10.0
MAX_REQUESTS = 5_000  # per sequential phase, whatever the time
OPEN_DRAIN_S = 1.0
WARM_REQUESTS = 20  # how long an open-loop phase waits for its last answers


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    async with session.post(url, json=body) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")


async def sequential(session: aiohttp.ClientSession, url: str, seconds: float) -> list[float]:
    for _ in range(WARM_REQUESTS):  # warm the connection and the system's caches
        await _post(session, url, BODY)
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop and len(latencies) < MAX_REQUESTS:
        t0 = time.perf_counter()
        await _post(session, url, BODY)
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


async def first_bytes(session: aiohttp.ClientSession, url: str, seconds: float) -> list[float]:
    ttfb: list[float] = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop and len(ttfb) < MAX_REQUESTS:
        t0 = time.perf_counter()
        async with session.post(url, json=STREAM_BODY) as response:
            await response.content.readany()
            ttfb.append((time.perf_counter() - t0) * 1000)
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status} to a stream")
    return ttfb


async def closed(url: str, headers: dict[str, str], clients: int, seconds: float) -> float:
    done = 0
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as s:
        await asyncio.gather(*(_post(s, url, BODY) for _ in range(clients)))  # open them all
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await _post(s, url, BODY)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return done / (time.perf_counter() - started)


async def open_loop(url: str, headers: dict[str, str], rate: float, seconds: float) -> float:
    """The 99th percentile latency at ``rate`` requests/s, from when each was due;
    a failed or timed-out request counts as infinitely slow."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=1024)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as s:

        async def one(due: float) -> None:
            try:
                await _post(s, url, BODY)
                latencies.append((time.perf_counter() - due) * 1000)
            except Exception:
                latencies.append(float("inf"))

        tasks = []
        start = time.perf_counter() + 0.05
        count = max(1, int(rate * seconds))
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(due)))
        # A system far behind would take its whole queue's time to drain: past the limit
        # several times over, what is still out counts as infinitely slow.
        _, late = await asyncio.wait(tasks, timeout=OPEN_DRAIN_S)
        for task in late:
            task.cancel()
        latencies.extend([float("inf")] * (count - len(latencies)))
    return pct(latencies, 0.99)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    url, headers, seconds = spec["url"], spec.get("headers", {}), float(spec["seconds"])
    out: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=timeout) as s:
        for phase in spec["phases"]:
            if phase == "sequential":
                out[phase] = await sequential(s, url, seconds)
            elif phase == "stream":
                out[phase] = await first_bytes(s, url, seconds)
    for phase in spec["phases"]:
        kind, _, arg = phase.partition(":")
        if kind == "closed":
            out[phase] = await closed(url, headers, int(arg), seconds)
        elif kind == "open":
            out[phase] = await open_loop(url, headers, float(arg), seconds)
    return out


def main() -> None:
    print(json.dumps(asyncio.run(run(json.loads(sys.argv[1])))))


if __name__ == "__main__":
    main()
