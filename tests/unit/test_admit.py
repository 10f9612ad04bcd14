"""Admission as callers see it: each per-key limit refuses with 429 naming the limit
and when to retry, a refusal holds nothing back, and a store that fails is a 503 that
charges nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from edgeroute.store.base import ApiKey, KeyLimits, Store
from edgeroute.store.sqlite import SQLiteStore
from tests.support.inprocess import Client, add_key, counters, ledger, memory_gateway
from tests.support.scripted_upstream import ScriptedUpstream

REGISTRY = """
models:
  - {name: priced, endpoint: 'http://priced:1/v1', tier: small, retries: 0,
     price: {input_per_mtok: 1000, output_per_mtok: 2000}}
"""


async def _client(limits: KeyLimits, store: Store | None = None) -> tuple[Client, ApiKey]:
    gw = memory_gateway(REGISTRY, store=store)
    secret, key = await add_key(gw, limits=limits)
    return Client(gw, secret), key


async def test_success_carries_rate_limit_headers(upstream: ScriptedUpstream) -> None:
    client, _ = await _client(KeyLimits(rpm=5, tpm=10_000))

    response = await client.chat("priced", max_tokens=50)

    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit-requests"] == "5"
    assert response.headers["x-ratelimit-remaining-requests"] == "4"
    assert response.headers["x-ratelimit-limit-tokens"] == "10000"
    reserved = 10_000 - int(response.headers["x-ratelimit-remaining-tokens"])
    assert reserved > 50  # the prompt plus max_tokens, reserved up front
    assert 1 <= int(response.headers["x-ratelimit-reset-requests"].removesuffix("s")) <= 60


async def test_requests_per_minute(upstream: ScriptedUpstream) -> None:
    client, key = await _client(KeyLimits(rpm=1))

    assert (await client.chat("priced")).status_code == 200
    refused = await client.chat("priced")

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert error["message"].startswith(
        f"Rate limit reached for API key {key.key_id}: 1 requests per minute, 1 used in the "
        "last 60 s."
    )
    assert error["param"] is None
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "1"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert upstream.attempts() == ["priced"]


@pytest.mark.parametrize(
    ("limits", "what", "header"),
    [
        (
            KeyLimits(tpm=100),
            "100 tokens per minute, 0 used in the last 60 s",
            "x-ratelimit-limit-tokens",
        ),
        (KeyLimits(tokens_per_day=100), "100 tokens per day, 0 used", None),
    ],
)
async def test_token_limits_refuse_what_max_tokens_would_reserve(
    upstream: ScriptedUpstream, limits: KeyLimits, what: str, header: str | None
) -> None:
    client, key = await _client(limits)

    refused = await client.chat("priced", max_tokens=200)

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert f"API key {key.key_id}: {what} (this request reserves " in error["message"]
    assert "lower 'max_tokens'" in error["message"]
    assert error["param"] == "max_tokens"
    assert "retry-after" in refused.headers
    if header:
        assert refused.headers[header] == "100"
    assert upstream.calls == []
    assert (await client.chat("priced", max_tokens=20)).status_code == 200  # smaller fits


async def test_budget(upstream: ScriptedUpstream) -> None:
    client, key = await _client(KeyLimits(budget_usd_micros=10_000))  # $0.01 a month

    refused = await client.chat("priced", max_tokens=50)  # could cost over $0.10

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
    assert (
        f"API key {key.key_id} has used $0.0000 of its monthly budget of $0.01"
        in (error["message"])
    )
    assert "Lower 'max_tokens'" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert upstream.calls == []


async def test_a_refusal_gives_back_what_the_other_limits_reserved(
    upstream: ScriptedUpstream,
) -> None:
    limits = KeyLimits(rpm=1, tpm=100, tokens_per_day=10**6, budget_usd_micros=10**8)
    client, key = await _client(limits)
    since = time.time()

    assert (await client.chat("priced", max_tokens=500)).status_code == 429  # over the tpm
    assert await counters(client.gw, key, since) == {
        "requests": 0,
        "tokens": 0,
        "tokens_per_day": 0,
        "budget": 0,
    }
    # The one request a minute was not used up by the refused request.
    assert (await client.chat("priced", max_tokens=20)).status_code == 200


class FailingStore:
    """A real store, except that the first counter update whose name ends with
    ``suffix`` raises, as a store that times out would."""

    def __init__(self, inner: Store, suffix: str) -> None:
        self._inner = inner
        self._suffix = suffix
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def add_to_counter(self, name: str, *args: Any) -> Any:
        if not self.failed and name.endswith(self._suffix):
            self.failed = True
            raise TimeoutError("the store did not answer")
        return await self._inner.add_to_counter(name, *args)


async def test_a_store_failure_is_503_and_gives_back_partial_reservations(
    upstream: ScriptedUpstream,
) -> None:
    store = FailingStore(SQLiteStore(":memory:"), "#tokens")
    limits = KeyLimits(rpm=10, tpm=10_000, tokens_per_day=10**6, budget_usd_micros=10**8)
    client, key = await _client(limits, store=store)
    since = time.time()

    response = await client.chat("priced", max_tokens=50)

    assert store.failed
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "store_unavailable"
    assert "Nothing was charged" in error["message"]
    assert response.headers["retry-after"] == "1"
    assert await counters(client.gw, key, since) == {
        "requests": 0,
        "tokens": 0,
        "tokens_per_day": 0,
        "budget": 0,
    }
    assert upstream.calls == []
    assert [r.status for r in await ledger(client.gw)] == [503]
    assert (await client.chat("priced", max_tokens=50)).status_code == 200  # it recovers


async def test_a_cache_that_cannot_be_read_is_a_miss(upstream: ScriptedUpstream) -> None:
    class CacheDown(SQLiteStore):
        async def cache_get(self, key: str) -> bytes | None:
            raise TimeoutError("the store did not answer")

    client, _ = await _client(KeyLimits(rpm=10), store=CacheDown(":memory:"))

    response = await client.chat("priced", temperature=0)  # deterministic: looked up

    assert response.status_code == 200
    assert response.headers["x-edgeroute-cache"] == "miss"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/priced", None),
        ("GET", "/v1/usage", None),
        (
            "POST",
            "/v1/classify",
            {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        ),
        ("POST", "/v1/route", {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}),
    ],
)
async def test_routes_that_generate_nothing_count_against_requests_per_minute(
    upstream: ScriptedUpstream, method: str, path: str, body: dict[str, Any] | None
) -> None:
    # Once these ignored the key's limits: 400 requests went through on a key past 50/min.
    client, _ = await _client(KeyLimits(rpm=3))
    transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)
    headers = {"authorization": f"Bearer {client.secret}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        statuses = [
            (await http.request(method, path, json=body, headers=headers)).status_code
            for _ in range(4)
        ]
        refused = await http.request(method, path, json=body, headers=headers)
    assert statuses[:3] == [200, 200, 200], statuses
    assert statuses[3] == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "retry-after" in refused.headers
