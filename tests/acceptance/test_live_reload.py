"""Live registry reloads in `edgeroute serve`, through the openai SDK: a model's endpoint
moves from a real llama.cpp server to the fault server while 50 requests are in flight
(rewritten slowly, so the gateway sees a half-written file first); no request fails,
each is answered whole by one endpoint or the other, and later requests go to the new
one. A broken rewrite is then refused, logged, and the registry before it serves on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import openai
import pytest
import yaml

from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import GatewayProcess, registry_gateway
from tests.support.openai_sdk import user_says

RELOAD_S = 0.2
HANG_GUARD_S = 60.0
INSTANT = "Hello from the instant upstream."
IN_FLIGHT = 50


def _on_llama(llama_url: str) -> dict[str, object]:
    return {
        "name": "switching",
        "endpoint": llama_url,
        "capabilities": ["chat"],
        "context_window": 2048,
        "timeouts": {"connect": 2, "read": 60, "total": 120},
        "tier": "small",  # last: the half-written rewrite below stops before it
    }


def _on_fault_server(url: str) -> dict[str, object]:
    moved = fault_model("switching", url, "instant#reload")
    del moved["tier"]
    moved["tier"] = "small"  # last, as above
    return moved


def _yaml(*models: dict[str, object]) -> str:
    return yaml.safe_dump({"models": list(models)}, sort_keys=False)


@pytest.fixture(scope="module")
def served(llama_url: str, workdir: Path) -> Iterator[tuple[GatewayProcess, Path]]:
    process = registry_gateway(
        workdir,
        "reload",
        [_on_llama(llama_url)],
        {"EDGEROUTE_CONFIG_RELOAD_S": str(RELOAD_S)},
    )
    with process:
        yield process, workdir / "reload-models.yaml"


@pytest.fixture(scope="module")
def api_key(served: tuple[GatewayProcess, Path]) -> str:
    return str(served[0].create_key("reload")["api_key"])


@pytest.fixture
def client(served: tuple[GatewayProcess, Path], api_key: str) -> openai.AsyncOpenAI:
    """A client per test: its connection pool belongs to the test's event loop."""
    return openai.AsyncOpenAI(
        base_url=served[0].url + "/v1", api_key=api_key, max_retries=0, timeout=HANG_GUARD_S
    )


async def _ask(client: openai.AsyncOpenAI) -> str:
    answer = await client.chat.completions.create(
        model="switching", messages=user_says("Say hi"), max_tokens=4
    )
    return answer.choices[0].message.content or ""


async def _from_fault_server(client: openai.AsyncOpenAI) -> bool:
    return await _ask(client) == INSTANT


async def _until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not await predicate():
        assert time.monotonic() < deadline, f"hang guard: {what}"
        await asyncio.sleep(RELOAD_S / 2)


async def test_a_registry_rewritten_under_load_switches_whole(
    served: tuple[GatewayProcess, Path],
    client: openai.AsyncOpenAI,
    fault_upstream: FaultUpstream,
) -> None:
    gateway, registry = served
    assert await _ask(client) != INSTANT  # llama.cpp answers
    before = fault_upstream.requests["instant#reload"]

    in_flight = [asyncio.create_task(_ask(client)) for _ in range(IN_FLIGHT)]
    await asyncio.sleep(0.3)  # they are on their way to llama.cpp (two slots)
    # Rewritten in two writes, several checks apart: the first leaves the model without
    # its tier, which the gateway must refuse rather than serve.
    text = _yaml(_on_fault_server(fault_upstream.url))
    cut = text.index("tier:")
    with registry.open("w") as half:
        half.write(text[:cut])
        half.flush()
        await asyncio.sleep(RELOAD_S * 4)
        late = [asyncio.create_task(_ask(client)) for _ in range(10)]  # under the half file
        await asyncio.sleep(RELOAD_S * 2)
        half.write(text[cut:])

    await _until(lambda: _from_fault_server(client), "the rewrite was never picked up")
    answers = await asyncio.gather(*in_flight, *late)  # any failure raises here
    assert all(answers), "every request in flight got a whole answer"
    # Later requests all go to the new endpoint.
    after = await asyncio.gather(*(_ask(client) for _ in range(20)))
    assert after == [INSTANT] * 20
    assert fault_upstream.requests["instant#reload"] - before >= 21
    log = gateway.log.read_text()
    assert f"registry file {registry} changed and was refused" in log
    assert "models.switching.tier: Field required" in log


async def test_a_broken_rewrite_is_refused_and_the_registry_before_it_serves(
    served: tuple[GatewayProcess, Path],
    client: openai.AsyncOpenAI,
    fault_upstream: FaultUpstream,
) -> None:
    gateway, registry = served
    registry.write_text(_yaml(_on_fault_server(fault_upstream.url)))

    await _until(lambda: _from_fault_server(client), "the registry did not serve")
    refusals = gateway.log.read_text().count("changed and was refused")
    broken = {**_on_fault_server(fault_upstream.url), "fallbacks": ["nowhere"]}
    registry.write_text(_yaml(broken))

    async def refused() -> bool:
        assert await _ask(client) == INSTANT  # requests start the checks; the old one serves
        return gateway.log.read_text().count("changed and was refused") > refusals

    await _until(refused, "the broken registry was not refused")
    log = gateway.log.read_text()
    assert f"{registry}: models.switching.fallbacks names 'nowhere'" in log
    for _ in range(3):  # more checks: still the registry before, refused only once
        await asyncio.sleep(RELOAD_S)
        assert [m.id async for m in client.models.list()] == ["switching"]
        assert await asyncio.gather(*(_ask(client) for _ in range(5))) == [INSTANT] * 5
    assert gateway.log.read_text().count("changed and was refused") == refusals + 1
