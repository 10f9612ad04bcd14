"""model "auto": the router against two real llama.cpp servers (small and large), a
fault-injecting server (a vision model whose /metrics reports a queue), and a dead
endpoint; each decision checked on the response headers and on /v1/route."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from edgeroute.config.registry import load_registry
from edgeroute.health.probe import probe_all
from edgeroute.store.sqlite import SQLiteStore
from tests.support.fault_upstream import FaultUpstream
from tests.support.gateway import GatewayProcess, policy_env

GREETING = "Hi! How are you doing today?"
HARD_CODE = """I need help with a concurrency bug and a redesign. Step by step, please.

```python
import threading

class Counter:
    def __init__(self):
        self.value = 0

    def increment(self):
        current = self.value
        self.value = current + 1

def worker(counter, n):
    for _ in range(n):
        counter.increment()
```

1. Explain the race condition in increment() and prove why the final count can be lower.
2. Design a lock-free alternative and compare the trade-offs against a mutex.
3. The fix must keep the public API, must work under free-threaded Python, and must include
   tests that fail before the fix and pass after it.
4. Analyse the complexity and the edge cases (overflow, fork safety, signal handlers).
"""
IMAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ],
}


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def routing_env(
    llama_url: str, second_llama_url: str, fault_upstream: FaultUpstream, workdir: Path
) -> dict[str, str]:
    folder = workdir / "routing"
    folder.mkdir(exist_ok=True)
    small_rules = {"max_tokens": {"min": 1, "max": 64, "default": 16, "rule": "clamp"}}
    registry = {
        "models": [
            {"name": "edge-embedder", "protocol": "edge", "tier": "edge",
             "capabilities": ["embeddings"], "context_window": 256},
            {"name": "small-llama", "endpoint": llama_url, "tier": "small",
             "capabilities": ["chat", "completions"], "context_window": 2048,
             "parameters": small_rules, "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2}},
            {"name": "vision-mid", "endpoint": fault_upstream.url, "upstream_model": "instant",
             "tier": "medium", "capabilities": ["chat", "vision"], "context_window": 8192,
             "parameters": small_rules, "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            {"name": "dead-large", "endpoint": "http://127.0.0.1:9/v1", "tier": "large",
             "capabilities": ["chat"], "context_window": 8192, "retries": 0,
             "parameters": small_rules, "timeouts": {"connect": 1, "read": 2, "total": 5},
             "price": {"input_per_mtok": 4.0, "output_per_mtok": 12.0}},
            {"name": "big-llama", "endpoint": second_llama_url, "tier": "large",
             "capabilities": ["chat", "completions"], "context_window": 2048,
             "parameters": small_rules, "price": {"input_per_mtok": 5.0, "output_per_mtok": 15.0}},
        ]
    }  # fmt: skip
    policy = yaml.safe_load((Path(__file__).parents[2] / "infra" / "routing.yaml").read_text())
    policy["health_ttl_s"] = 0.2
    policy["circuit"] = {"failures_to_open": 3, "window_s": 300, "cool_down_s": 120}
    policy["congestion"] = {"max_waiting": {"medium": 10, "large": 10}, "priority_below": 1}
    return policy_env(folder, registry, policy)


@pytest.fixture(scope="module")
def router(routing_env: dict[str, str], workdir: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(routing_env, workdir) as process:
        yield process


@pytest.fixture(scope="module")
def key(router: GatewayProcess) -> str:
    return str(router.create_key("router-user")["api_key"])


def _chat(gw: GatewayProcess, key: str, messages: list[Any], **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **extra.pop("headers", {})}
    body = {"model": extra.pop("model", "auto"), "messages": messages, **extra}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


def _route(gw: GatewayProcess, key: str, messages: list[Any], **extra: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", **extra.pop("headers", {})}
    body = {"model": extra.pop("model", "auto"), "messages": messages, **extra}
    response = httpx.post(gw.url + "/v1/route", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _candidate(route: dict[str, Any], model: str) -> dict[str, Any]:
    return next(c for c in route["candidates"] if c["model"] == model)


def test_greeting_goes_to_the_small_tier(router: GatewayProcess, key: str) -> None:
    response = _chat(router, key, _user(GREETING))
    assert response.status_code == 200, response.text
    assert response.headers["x-edgeroute-tier"] in ("edge", "small")
    assert response.headers["x-edgeroute-model"] == "small-llama"
    assert response.headers["x-edgeroute-task"] == "chat"
    explained = _route(router, key, _user(GREETING))
    assert explained["tier"] == "small" and explained["classification"]["task"] == "chat"
    assert _candidate(explained, "big-llama")["kept"]  # a fallback upward


def test_long_multistep_code_goes_large(router: GatewayProcess, key: str) -> None:
    explained = _route(router, key, _user(HARD_CODE))
    assert explained["min_tier"] == "large", explained
    assert explained["classification"]["complexity"] >= 0.6
    assert explained["targets"] == ["dead-large", "big-llama", "vision-mid", "small-llama"]
    assert _candidate(explained, "small-llama")["why"] == (
        "degrade fallback: below the minimum tier large"
    )
    response = _chat(router, key, _user(HARD_CODE))
    assert response.status_code == 200, response.text
    # dead-large is the cheapest large model and fails; big-llama answers.
    assert response.headers["x-edgeroute-model"] == "big-llama"
    assert response.headers["x-edgeroute-tier"] == "large"
    assert response.headers["x-edgeroute-attempts"] == "2"


def test_dead_endpoint_is_skipped_once_its_circuit_opens_everywhere(
    router: GatewayProcess, key: str, routing_env: dict[str, str], workdir: Path
) -> None:
    for _ in range(2):  # with the previous test's failure: three, the policy's limit
        assert _chat(router, key, _user(HARD_CODE)).status_code == 200
    response = _chat(router, key, _user(HARD_CODE))
    assert response.headers["x-edgeroute-model"] == "big-llama"
    assert response.headers["x-edgeroute-attempts"] == "1"
    assert "circuit open" in _candidate(_route(router, key, _user(HARD_CODE)), "dead-large")["why"]
    second = GatewayProcess(routing_env, workdir).start()  # shares the store, knew nothing
    try:
        first_answer = _chat(second, key, _user(HARD_CODE))
        assert first_answer.status_code == 200
        assert first_answer.headers["x-edgeroute-attempts"] == "1"
        assert (
            "circuit open" in _candidate(_route(second, key, _user(HARD_CODE)), "dead-large")["why"]
        )
    finally:
        second.stop()


def test_image_goes_only_to_a_vision_model(router: GatewayProcess, key: str) -> None:
    response = _chat(router, key, [IMAGE])
    assert response.status_code == 200, response.text
    assert response.headers["x-edgeroute-model"] == "vision-mid"
    explained = _route(router, key, [IMAGE])
    assert _candidate(explained, "small-llama")["why"] == "cannot do vision"
    blind = str(router.create_key("no-vision", "--models", "small-llama", "big-llama")["api_key"])
    refused = _chat(router, blind, [IMAGE])
    assert refused.status_code == 400
    assert "image" in refused.json()["error"]["message"]


def test_queue_over_threshold_moves_low_priority_keys_down(
    router: GatewayProcess, key: str, routing_env: dict[str, str], fault_upstream: FaultUpstream
) -> None:
    async def probe() -> None:
        store = SQLiteStore(routing_env["EDGEROUTE_SQLITE_PATH"])
        await probe_all(load_registry(routing_env["EDGEROUTE_REGISTRY"]), store)
        await store.close()

    vip = str(router.create_key("vip", "--priority", "5")["api_key"])
    fault_upstream.queue_depth = 50
    try:
        asyncio.run(probe())
        time.sleep(0.3)  # the routers' health TTL
        low = _chat(router, key, _user(GREETING), model="medium")
        assert low.status_code == 200
        assert low.headers["x-edgeroute-tier"] == "small"
        assert "moved down to small" in low.headers["x-edgeroute-route-reason"]
        explained = _route(router, key, _user(GREETING), model="medium")
        assert "queue 50 > 10" in _candidate(explained, "vision-mid")["why"]
        high = _chat(router, vip, _user(GREETING), model="medium")
        assert high.headers["x-edgeroute-model"] == "vision-mid"
    finally:
        fault_upstream.queue_depth = 0
        asyncio.run(probe())


def test_cost_ceiling_below_large_moves_the_request_down(router: GatewayProcess, key: str) -> None:
    explained = _route(router, key, _user(HARD_CODE))
    large_cost = _candidate(explained, "big-llama")["predicted_cost_usd"]
    ceiling = {"x-edgeroute-max-cost": f"{large_cost / 3:.8f}"}
    capped = _route(router, key, _user(HARD_CODE), headers=ceiling)
    assert capped["tier"] != "large"
    assert "x-edgeroute-max-cost" in _candidate(capped, "big-llama")["why"]
    assert "moved down" in capped["reason"]
    response = _chat(router, key, _user(HARD_CODE), headers=ceiling)
    assert response.status_code == 200
    assert response.headers["x-edgeroute-tier"] != "large"
    refused = _chat(router, key, _user(HARD_CODE), headers={"x-edgeroute-max-cost": "0.000000001"})
    assert refused.status_code == 402
    assert refused.json()["error"]["param"] == "x-edgeroute-max-cost"
