"""``x-edgeroute-max-cost`` on a named model: fallbacks predicted to cost more are
dropped, and the model itself over the ceiling is a 402 before any upstream call."""

from __future__ import annotations

import pytest

from edgeroute.errors import UpstreamUnavailable
from tests.support.inprocess import Client, add_key, ledger, memory_gateway
from tests.support.scripted_upstream import Fail, ScriptedUpstream

# With max_tokens 100 and a ~10-token prompt: main ~ $0.0002, dear ~ $0.02, cheap ~ $0.00002.
REGISTRY = """
models:
  - {name: main, endpoint: 'http://main:1/v1', tier: medium, retries: 0,
     fallbacks: [dear, cheap], price: {input_per_mtok: 1, output_per_mtok: 2}}
  - {name: dear, endpoint: 'http://dear:1/v1', tier: large, retries: 0,
     price: {input_per_mtok: 100, output_per_mtok: 200}}
  - {name: cheap, endpoint: 'http://cheap:1/v1', tier: small, retries: 0,
     price: {input_per_mtok: 0.1, output_per_mtok: 0.2}}
"""
CEILING = "x-edgeroute-max-cost"


@pytest.fixture
async def client(upstream: ScriptedUpstream) -> Client:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw)
    upstream.script("main", Fail(UpstreamUnavailable("main is down")))
    return Client(gw, secret)


async def test_without_a_ceiling_every_fallback_is_tried_in_order(
    client: Client, upstream: ScriptedUpstream
) -> None:
    response = await client.chat("main", max_tokens=100)

    assert response.headers["x-edgeroute-model"] == "dear"
    assert upstream.attempts() == ["main", "dear"]


async def test_a_ceiling_drops_the_fallbacks_that_would_cost_more(
    client: Client, upstream: ScriptedUpstream
) -> None:
    response = await client.chat("main", max_tokens=100, headers={CEILING: "0.001"})

    assert response.status_code == 200
    assert response.headers["x-edgeroute-model"] == "cheap"
    assert upstream.attempts() == ["main", "cheap"]  # 'dear' was never called


async def test_a_model_over_the_ceiling_is_402_before_any_call(
    client: Client, upstream: ScriptedUpstream
) -> None:
    response = await client.chat("main", max_tokens=100, headers={CEILING: "0.0001"})

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "cost_ceiling"
    assert error["param"] == CEILING
    assert "Model 'main' could cost up to $0.000" in error["message"]
    assert "x-edgeroute-max-cost of $0.000100" in error["message"]
    assert "Lower 'max_tokens'" in error["message"]
    assert upstream.calls == []
    assert [r.status for r in await ledger(client.gw)] == [402]


async def test_lowering_max_tokens_brings_the_model_under_the_ceiling(
    client: Client, upstream: ScriptedUpstream
) -> None:
    response = await client.chat("main", max_tokens=10, headers={CEILING: "0.0001"})

    assert response.status_code == 200  # 'main' failed; 'cheap' fits the ceiling too
    assert upstream.attempts() == ["main", "cheap"]


@pytest.mark.parametrize("value", ["cheap", "-1", "nan"])
async def test_a_ceiling_that_is_not_an_amount_names_the_header(
    client: Client, upstream: ScriptedUpstream, value: str
) -> None:
    response = await client.chat("main", headers={CEILING: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == CEILING
    assert f"Invalid 'x-edgeroute-max-cost' header {value!r}" in error["message"]
    assert upstream.calls == []
