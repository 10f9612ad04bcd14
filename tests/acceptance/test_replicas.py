"""Replicas of one model against real servers: two llama.cpp servers weighted 80/20 share
the traffic by weight, a replica that goes down receives nothing once its circuit
opens, and /v1/usage tells the replicas (and versions) apart."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from edgeroute.config.policy import Circuit
from edgeroute.tools import llama
from tests.support.gateway import GatewayProcess, registry_gateway

TINY = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 0}
CONCURRENCY = 8


@pytest.fixture(scope="module")
def doomed_llama() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A llama.cpp server of its own, which the failover test stops."""
    proc, url = llama.start()
    try:
        yield proc, url
    finally:
        llama.stop(proc)


@pytest.fixture(scope="module")
def replicas_gateway(
    llama_url: str,
    second_llama_url: str,
    doomed_llama: tuple[subprocess.Popen[bytes], str],
    workdir: Path,
) -> Iterator[GatewayProcess]:
    models: list[dict[str, object]] = [
        {
            "name": "llama-pool",
            "tier": "small",
            "capabilities": ["chat"],
            "context_window": 2048,
            "replicas": [
                {"endpoint": llama_url, "weight": 80, "version": "v1"},
                {"endpoint": second_llama_url, "weight": 20, "version": "v2-canary"},
            ],
        },
        {
            "name": "failover-pool",
            "tier": "small",
            "capabilities": ["chat"],
            "context_window": 2048,
            "timeouts": {"connect": 2, "read": 30, "total": 60},
            "replicas": [
                {"endpoint": llama_url, "weight": 50, "name": "steady"},
                {"endpoint": doomed_llama[1], "weight": 50, "name": "doomed"},
            ],
        },
    ]
    with registry_gateway(workdir, "replicas", models, {}) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def http(replicas_gateway: GatewayProcess) -> Iterator[httpx.Client]:
    secret = replicas_gateway.create_key("replicas")["api_key"]
    headers = {"authorization": f"Bearer {secret}", "x-edgeroute-cache": "bypass"}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    with httpx.Client(
        base_url=replicas_gateway.url, headers=headers, timeout=60, limits=limits
    ) as client:
        yield client


def _served_by(http: httpx.Client, model: str, count: int) -> Counter[str]:
    """Which replica answered each of ``count`` requests, sent ``CONCURRENCY`` at a time."""

    def one(_: int) -> str:
        response = http.post("/v1/chat/completions", json={**TINY, "model": model})
        assert response.status_code == 200, response.text
        return response.headers["x-edgeroute-replica"]

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return Counter(pool.map(one, range(count)))


def _usage(http: httpx.Client, group_by: str) -> dict[str, dict[str, object]]:
    response = http.get("/v1/usage", params={"group_by": group_by, "limit": 1000})
    assert response.status_code == 200, response.text
    return {str(row[group_by]): row for row in response.json()["data"]}


def test_weights_80_20_over_1000_requests_compared_by_version(http: httpx.Client) -> None:
    served = _served_by(http, "llama-pool", 1000)
    assert set(served) == {"v1", "v2-canary"}
    assert 0.75 <= served["v1"] / 1000 <= 0.85, served
    by_version = _usage(http, "version")
    for version in ("v1", "v2-canary"):
        assert by_version[version]["requests"] == served[version]
        assert by_version[version]["errors"] == 0
        assert isinstance(by_version[version]["latency_ms_mean"], float)


def test_a_replica_that_goes_down_receives_nothing_once_its_circuit_opens(
    http: httpx.Client, doomed_llama: tuple[subprocess.Popen[bytes], str]
) -> None:
    assert set(_served_by(http, "failover-pool", 20)) == {"steady", "doomed"}
    llama.stop(doomed_llama[0])
    failures_to_open = Circuit().failures_to_open
    served = _served_by(http, "failover-pool", 100)  # every request still answered
    assert served == {"steady": 100}
    failed = _usage(http, "replica")["doomed"]["failed_attempts"]
    # Each failure before the circuit opened was retried on the steady replica; once
    # open, the doomed replica was not tried again. Concurrent requests may each have
    # picked it before the opening failure was recorded.
    assert isinstance(failed, int)
    assert failures_to_open <= failed < failures_to_open + CONCURRENCY
    again = _served_by(http, "failover-pool", 50)
    assert again == {"steady": 50}
    assert _usage(http, "replica")["doomed"]["failed_attempts"] == failed
