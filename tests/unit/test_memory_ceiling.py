"""The memory ceiling (api/memory.py): above EDGEROUTE_MEMORY_LIMIT_MB new requests are
a 503 ``overloaded`` with retry-after, /healthz still answers and reports the figures,
and resident memory is read at most every 100 ms. Before, nothing bounded memory."""

from __future__ import annotations

import httpx
import pytest

from edgeroute.api import memory
from edgeroute.api.memory import MemoryGauge, ceiling_mb
from edgeroute.settings import Settings
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import ScriptedUpstream

REGISTRY = "models:\n  - {name: m, endpoint: 'http://m:1/v1', tier: small}\n"


async def _client(limit_mb: int | None) -> Client:
    gw = memory_gateway(REGISTRY)
    gw.settings = gw.settings.model_copy(update={"memory_limit_mb": limit_mb})
    secret, _ = await add_key(gw)
    return Client(gw, secret)


async def _healthz(client: Client) -> httpx.Response:
    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        return await http.get("/healthz")


async def test_over_the_ceiling_new_requests_are_503_overloaded_and_healthz_answers(
    upstream: ScriptedUpstream,
) -> None:
    client = await _client(limit_mb=1)  # any process is over 1 MiB

    refused = await client.chat("m")
    health = await _healthz(client)

    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "server_error"
    assert refused.json()["error"]["code"] == "overloaded"
    assert "memory ceiling" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"
    assert upstream.calls == []
    assert health.status_code == 200
    assert health.json()["status"] == "overloaded"
    assert health.json()["memory"]["limit_mb"] == 1 and health.json()["memory"]["overloaded"]


async def test_under_the_ceiling_requests_pass_and_healthz_reports_memory(
    upstream: ScriptedUpstream,
) -> None:
    client = await _client(limit_mb=64 * 1024)

    assert (await client.chat("m")).status_code == 200
    report = (await _healthz(client)).json()
    assert report["status"] == "ok"
    assert report["memory"]["rss_mb"] > 10 and report["memory"]["limit_mb"] == 64 * 1024


def test_the_ceiling_defaults_to_90_percent_of_lambdas_memory_and_none_locally() -> None:
    settings = Settings(registry="<memory>")
    assert ceiling_mb(settings, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}) == 1843
    assert ceiling_mb(settings, {}) is None
    configured = settings.model_copy(update={"memory_limit_mb": 700})
    assert ceiling_mb(configured, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}) == 700


def test_resident_memory_is_read_at_most_every_100_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []

    def resident() -> int:
        reads.append(1)
        return 10 * 1024 * 1024

    monkeypatch.setattr(memory, "resident_bytes", resident)
    gauge = MemoryGauge(limit_mb=100)
    assert not any(gauge.over() for _ in range(1000))
    assert len(reads) == 1
