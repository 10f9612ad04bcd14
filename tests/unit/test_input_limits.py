"""Limits on what a request may ask of the models behind the gateway, in process: each
target (fallbacks and routed ones too) gets only values within its own rules, a request
too long for every model is the caller's 400, a zero cost ceiling lets nothing priced
through, and the edge embedder bounds the work one request may ask of it."""

from __future__ import annotations

import pytest

from edgeroute.errors import UpstreamUnavailable
from edgeroute.upstreams.edge import MAX_REQUEST_TOKENS
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import Fail, ScriptedUpstream

REGISTRY = """
models:
  - {name: main, endpoint: 'http://main:1/v1', tier: medium, retries: 0,
     capabilities: [chat, completions], context_window: 200000,
     fallbacks: [tight, single]}
  - name: tight
    endpoint: 'http://tight:1/v1'
    tier: medium
    retries: 0
    capabilities: [chat, completions]
    context_window: 200000
    parameters: {max_tokens: {min: 1, max: 64, rule: clamp}}
  - name: single
    endpoint: 'http://single:1/v1'
    tier: medium
    retries: 0
    capabilities: [chat, completions]
    context_window: 200000
    parameters: {n: {min: 1, max: 1, rule: reject}}
  - {name: penny, endpoint: 'http://penny:1/v1', tier: small, capabilities: [chat],
     price: {input_per_mtok: 0.01, output_per_mtok: 0.01}}
  - {name: embed, protocol: edge, tier: edge, capabilities: [embeddings], context_window: 512}
  - {name: moderator, protocol: edge, tier: edge, capabilities: [moderation],
     context_window: 100000, price: {input_per_mtok: 1}}
"""
ROUTED = """
models:
  - name: only
    endpoint: 'http://only:1/v1'
    tier: small
    capabilities: [chat]
    context_window: 200000
    parameters: {max_tokens: {min: 1, max: 64, default: 16, rule: clamp}}
  - {name: short, endpoint: 'http://short:1/v1', tier: large, capabilities: [chat],
     context_window: 2048}
"""
CEILING = "x-edgeroute-max-cost"


async def _client(registry: str = REGISTRY) -> Client:
    gw = memory_gateway(registry)
    secret, _ = await add_key(gw)
    return Client(gw, secret)


async def test_a_fallback_gets_the_request_clamped_to_its_own_rules(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("main", Fail(UpstreamUnavailable("main is down")))
    client = await _client()

    response = await client.chat("main", max_tokens=5000)

    assert response.status_code == 200, response.text
    assert upstream.attempts() == ["main", "tight"]
    assert [c.payload["max_tokens"] for c in upstream.calls] == [5000, 64]


async def test_a_fallback_whose_rules_refuse_the_request_is_never_called(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("main", Fail(UpstreamUnavailable("main is down")))
    upstream.script("tight", Fail(UpstreamUnavailable("tight is down")))
    client = await _client()

    response = await client.chat("main", n=3)

    assert response.status_code == 503
    assert upstream.attempts() == ["main", "tight"]  # 'single' takes n of 1 only
    assert all(c.payload["n"] == 3 for c in upstream.calls)


async def test_a_routed_request_gets_max_completion_tokens_clamped_like_max_tokens(
    upstream: ScriptedUpstream,
) -> None:
    client = await _client(ROUTED)

    response = await client.chat("auto", max_completion_tokens=10**6)

    assert response.status_code == 200, response.text
    assert [(c.model, c.payload["max_completion_tokens"]) for c in upstream.calls] == [("only", 64)]
    assert "max_tokens" not in upstream.calls[0].payload  # no default beside it


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/route"])
async def test_a_prompt_longer_than_every_context_window_is_a_400_naming_the_fix(
    upstream: ScriptedUpstream, path: str
) -> None:
    client = await _client(ROUTED)
    body = {"model": "auto", "messages": [{"role": "user", "content": "word " * 900_000}]}

    response = await client.post(path, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "(the largest: 'only', 200000 tokens)" in error["message"]
    assert "Shorten 'messages'" in error["message"]
    assert upstream.calls == []


async def test_max_tokens_too_large_for_every_context_window_names_max_tokens(
    upstream: ScriptedUpstream,
) -> None:
    client = await _client(ROUTED.replace("max: 64", "max: 1000000"))

    response = await client.chat("auto", max_tokens=500_000)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "max_tokens")
    assert "Lower 'max_tokens' to at most 199991" in error["message"]


async def test_a_zero_ceiling_refuses_a_request_that_costs_under_a_micro_dollar(
    upstream: ScriptedUpstream,
) -> None:
    client = await _client()

    response = await client.chat("penny", max_tokens=1, headers={CEILING: "0"})

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["param"] == CEILING and "x-edgeroute-max-cost of $0.000000" in error["message"]
    assert upstream.calls == []
    free = await client.chat("main", max_tokens=1, headers={CEILING: "0"})
    assert free.status_code == 200  # a model that costs nothing runs under a zero ceiling


@pytest.mark.parametrize("value", ["-1", "abc", "inf", "nan", "1e400", "1_0", ""])
async def test_moderations_check_the_ceiling_header_too(value: str) -> None:
    client = await _client()

    response = await client.post("/v1/moderations", {"input": "hi"}, headers={CEILING: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == CEILING
    assert "as a number of 0 or more" in error["message"]


async def test_a_zero_ceiling_refuses_a_priced_moderation() -> None:
    client = await _client()

    response = await client.post(
        "/v1/moderations", {"input": "hello there"}, headers={CEILING: "0"}
    )

    assert response.status_code == 402
    assert "Shorten 'input', raise the ceiling." in response.json()["error"]["message"]


async def test_the_ceiling_header_is_a_plain_finite_amount(upstream: ScriptedUpstream) -> None:
    client = await _client()

    for value in ("0", "0.01", ".5", "1e-05", " 2 "):
        assert (await client.chat("main", headers={CEILING: value})).status_code == 200
    for value in ("inf", "1e400", "1_0", "+1"):
        response = await client.chat("main", headers={CEILING: value})
        assert response.status_code == 400, value
        assert response.json()["error"]["param"] == CEILING


async def test_the_edge_embedder_bounds_the_tokens_of_one_request() -> None:
    client = await _client()
    over = MAX_REQUEST_TOKENS // 512 + 1  # inputs of 512 tokens each once truncated
    text = "lorem ipsum dolor sit amet " * 200

    response = await client.post(
        "/v1/embeddings", {"model": "embed", "input": [text] * over, "truncate": True}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("input", "max_tokens_per_request")
    assert f"at most {MAX_REQUEST_TOKENS} tokens per request" in error["message"]
    assert "Split 'input' over several requests" in error["message"]
