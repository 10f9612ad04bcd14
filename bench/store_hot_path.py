"""The store's share of the hot path, on SQLite and on DynamoDB through moto's server.

Per request the gateway waits on one round: the quota updates (here rpm and tpm) and
the cache look-up, issued together. This measures that round's latency (p50/p99 over
N requests) and the raw conditional-update rate from one client, per backend.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid

from edgeroute.config.registry import ModelSpec
from edgeroute.pipeline.admit import admit
from edgeroute.pipeline.cache import ResponseCache
from edgeroute.settings import Settings
from edgeroute.store import Store, open_store
from edgeroute.store.base import KeyLimits
from edgeroute.store.keys import mint_key
from edgeroute.types import Kind

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "500"))
MODEL = ModelSpec(name="m", endpoint="http://127.0.0.1:1", tier="small", max_output_tokens=256)


async def _measure(store: Store) -> dict[str, float]:
    _, key = mint_key("bench", limits=KeyLimits(rpm=10**9, tpm=10**12))
    cache = ResponseCache(store, ttl_s=60, max_bytes=1 << 20)
    payload: dict[str, object] = {"max_tokens": 64}
    for _ in range(20):
        await asyncio.gather(admit(store, key, Kind.CHAT, MODEL, payload, 30), cache.get("warm"))
    samples = []
    for i in range(ROUNDS):
        t0 = time.perf_counter()
        await asyncio.gather(
            admit(store, key, Kind.CHAT, MODEL, payload, 30), cache.get(f"miss-{i}")
        )
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    count = 0
    stop_at = time.perf_counter() + 2.0
    while time.perf_counter() < stop_at:
        await store.add_to_counter("bench#ops", 0, 1, None, time.time() + 600)
        count += 1
    return {
        "round_p50_ms": statistics.median(samples),
        "round_p99_ms": samples[int(0.99 * len(samples)) - 1],
        "conditional_updates_per_s": count / 2.0,
    }


def main() -> None:
    from tests.support.moto_server import AWS_ENV, MotoServer

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Settings(store="sqlite", sqlite_path=os.path.join(tmp, "bench.db")))
        results["sqlite"] = asyncio.run(_measure(store))
    with MotoServer() as moto:
        from edgeroute.store.dynamodb import shared_client
        from edgeroute.store.tables import TableNames, create_tables

        os.environ.update(AWS_ENV)
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = moto.url
        names = TableNames.with_prefix(f"bench-{uuid.uuid4().hex[:6]}")
        create_tables(shared_client(moto.url, AWS_ENV["AWS_DEFAULT_REGION"]), names)
        dynamodb = Settings(store="dynamodb", table=names)
        results["dynamodb_moto"] = asyncio.run(_measure(open_store(dynamodb)))
    print(json.dumps({"rounds": ROUNDS, "results": results}, indent=2))
