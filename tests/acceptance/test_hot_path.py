"""The hot path waits on at most one store round trip: quota updates and the cache
look-up are issued together, and ledger, reconciliation and cache fill come after."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeroute import upstreams
from edgeroute.api.app import create_app
from edgeroute.config.registry import Protocol
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings
from edgeroute.store.base import KeyLimits, Store
from edgeroute.store.keys import mint_key

DELAY_S = 0.02  # each store call takes this long, so overlapping calls are visible


class RecordingStore:
    """Wraps a real store; logs when each call starts and ends."""

    def __init__(self, inner: Store, log: list[tuple[str, str, float]]) -> None:
        self._inner = inner
        self._log = log

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self._log.append(("start", name, time.perf_counter()))
            await asyncio.sleep(DELAY_S)
            result = await method(*args, **kwargs)
            self._log.append(("end", name, time.perf_counter()))
            return result

        return call


def _rounds(log: list[tuple[str, str, float]], before: float) -> list[list[str]]:
    """Group the calls that started before ``before`` into rounds of overlapping calls."""
    rounds: list[list[str]] = []
    in_flight = 0
    for event, name, at in log:
        if at >= before:
            break
        if event == "start":
            if in_flight == 0:
                rounds.append([])
            rounds[-1].append(name)
            in_flight += 1
        else:
            in_flight -= 1
    return rounds


async def test_one_store_round_trip_before_the_upstream(
    registry_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[tuple[str, str, float]] = []
    settings = Settings(registry=str(registry_file), sqlite_path=str(tmp_path / "s.db"))
    gateway = Gateway.from_settings(settings)
    gateway.store = RecordingStore(gateway.store, log)
    gateway.authenticator._store = gateway.store
    gateway.cache._store = gateway.store
    gateway.ledger.store = gateway.store
    # The first request of a minute reads the minute before once (sliding limits): keep
    # the warm-up and the measured request in one minute.
    if time.time() % 60 > 55:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)
    secret, record = mint_key("hot", limits=KeyLimits(rpm=100, tpm=100_000, tokens_per_day=10**6))
    await gateway.store.put_key(record)

    real = upstreams._ADAPTERS[Protocol.OPENAI]
    upstream_at: list[float] = []

    class Marking:
        async def send(self, *args: Any) -> Any:
            upstream_at.append(time.perf_counter())
            return await real.send(*args)

    monkeypatch.setitem(upstreams._ADAPTERS, Protocol.OPENAI, Marking())
    app = create_app(gateway)
    body = {"model": "instant", "messages": [{"role": "user", "content": "hot"}], "temperature": 0}
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await c.post("/v1/chat/completions", json={**body, "seed": 1}, headers=headers)  # warm key
        log.clear()
        upstream_at.clear()
        response = await c.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200
    rounds = _rounds(log, upstream_at[0])
    assert len(rounds) == 1, rounds
    assert sorted(rounds[0]) == ["add_to_counter"] * 3 + ["cache_get"]
    after = [name for event, name, at in log if event == "start" and at >= upstream_at[0]]
    assert sorted(after) == ["add_to_counter", "add_to_counter", "cache_put", "record_usage"]
