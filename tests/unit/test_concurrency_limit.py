"""Per-key concurrency (``--max-concurrent N``): a key has at most N calls in flight,
counted with leases in the store so the limit holds across instances; the slot is
given back however the call ends (answer, stream, upstream error, client hang-up), and
a refusal is a 429 naming the limit. Before, the limit was stored and never applied."""

from __future__ import annotations

import asyncio
import time

import pytest

from edgeroute.errors import UpstreamUnavailable
from edgeroute.pipeline.admit import Lease
from edgeroute.pipeline.gateway import Gateway
from edgeroute.store.base import ApiKey, KeyLimits
from tests.support.inprocess import Client, add_key, chat_body, memory_gateway
from tests.support.scripted_upstream import Answer, Fail, Hang, ScriptedUpstream

REGISTRY = """
models:
  - {name: slow, endpoint: 'http://slow:1/v1', tier: small, retries: 0}
  - {name: quick, endpoint: 'http://quick:1/v1', tier: small, retries: 0}
"""


async def _client(limits: KeyLimits) -> tuple[Client, ApiKey]:
    gw = memory_gateway(REGISTRY)
    secret, key = await add_key(gw, limits=limits)
    return Client(gw, secret), key


async def held(gw: Gateway, key: ApiKey) -> int:
    """The key's slots in use, read through the store's own lease method."""
    now = time.time()
    probe = await gw.store.acquire_lease(Lease.name(key.key_id), "probe", 10**6, now + 1, now)
    await gw.store.release_lease(Lease.name(key.key_id), "probe")
    return probe.value - 1


async def _until_in_flight(gw: Gateway, key: ApiKey, count: int) -> None:
    for _ in range(200):
        if await held(gw, key) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {count} calls in flight")


async def test_past_the_limit_is_a_429_naming_it_and_a_finished_call_frees_its_slot(
    upstream: ScriptedUpstream,
) -> None:
    client, key = await _client(KeyLimits(max_concurrent=2))
    upstream.script("slow", Hang())
    hanging = [asyncio.create_task(client.chat("slow")) for _ in range(2)]
    await _until_in_flight(client.gw, key, 2)

    refused = await client.chat("quick")

    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "concurrency_limit_exceeded"
    assert "2 requests in flight" in error["message"] and "--max-concurrent" in error["message"]
    assert refused.headers["retry-after"] == "1"
    assert upstream.attempts() == ["slow", "slow"]  # the refused call never left
    # The two callers hang up: their slots come back.
    for task in hanging:
        task.cancel()
    await asyncio.gather(*hanging, return_exceptions=True)
    assert await held(client.gw, key) == 0
    assert (await client.chat("quick")).status_code == 200
    assert await held(client.gw, key) == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_answers_and_upstream_errors_give_the_slot_back(
    upstream: ScriptedUpstream, stream: bool
) -> None:
    client, key = await _client(KeyLimits(max_concurrent=1))
    upstream.script("slow", Fail(UpstreamUnavailable("down (scripted)")), Answer())
    for expected in (503, 200, 200):
        response = await client.chat("slow", stream=stream)
        assert response.status_code == expected, response.text
        assert await held(client.gw, key) == 0


async def test_a_stream_the_client_hangs_up_on_gives_the_slot_back(
    upstream: ScriptedUpstream,
) -> None:
    client, key = await _client(KeyLimits(max_concurrent=1))
    upstream.script("slow", Hang(after_chunks=2))

    _, received = await client.hang_up_after(1, chat_body("slow", stream=True))

    assert received
    assert await held(client.gw, key) == 0
    assert (await client.chat("quick")).status_code == 200


async def test_a_call_refused_by_another_limit_takes_no_slot(upstream: ScriptedUpstream) -> None:
    client, key = await _client(KeyLimits(max_concurrent=1, rpm=1))
    assert (await client.chat("quick")).status_code == 200

    refused = await client.chat("quick")

    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert await held(client.gw, key) == 0


async def test_keys_without_the_limit_are_not_counted(upstream: ScriptedUpstream) -> None:
    client, key = await _client(KeyLimits())
    upstream.script("slow", Hang())
    hanging = [asyncio.create_task(client.chat("slow")) for _ in range(5)]
    for _ in range(200):
        if len(upstream.calls) == 5:
            break
        await asyncio.sleep(0.01)
    assert (await client.chat("quick")).status_code == 200
    assert await held(client.gw, key) == 0
    for task in hanging:
        task.cancel()
    await asyncio.gather(*hanging, return_exceptions=True)
