"""One estimate of what a request may use and cost: the router shows what admission reserves."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgeroute.config.registry import ModelSpec, ParameterRule, Price, parse_registry
from edgeroute.pipeline.admit import admit
from edgeroute.pipeline.params import apply_parameter_rules
from edgeroute.pricing import OUTPUT_CAP, completions_asked, cost_micros, estimate, output_tokens
from edgeroute.store.base import KeyLimits
from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.types import Kind
from tests.support.routing import decide_auto

REGISTRY = parse_registry(
    """
models:
  - {name: embed, protocol: edge, tier: edge, capabilities: [embeddings], context_window: 256,
     price: {input_per_mtok: 0.02, output_per_mtok: 0.5}}
  - {name: tiny, endpoint: 'http://small:1/v1', tier: small, capabilities: [chat],
     context_window: 4096, price: {input_per_mtok: 0.1, output_per_mtok: 0.2}}
  - {name: defaulted, endpoint: 'http://small:2/v1', tier: small, capabilities: [chat],
     context_window: 2048, price: {input_per_mtok: 0.3, output_per_mtok: 0.7},
     parameters: {max_tokens: {min: 1, max: 512, default: 48, rule: clamp}}}
  - {name: mid, endpoint: 'http://mid:1/v1', tier: medium, capabilities: [chat, vision, tools],
     context_window: 32768, max_output_tokens: 2000, price: {input_per_mtok: 1, output_per_mtok: 2}}
  - {name: big, endpoint: 'http://big:1/v1', tier: large, capabilities: [chat, tools],
     context_window: 131072, price: {input_per_mtok: 5, output_per_mtok: 15}}
""",
    "models.yaml",
)
PROMPT_TOKENS = 37


def _model(**fields: Any) -> ModelSpec:
    return ModelSpec(name="m", endpoint="http://h", tier="small", **fields)


def _month_start(now: float) -> int:
    day = datetime.fromtimestamp(now, UTC)
    return calendar.timegm((day.year, day.month, 1, 0, 0, 0))


def test_output_rules_in_order() -> None:
    model = _model(context_window=1000, max_output_tokens=300)
    both = {"max_completion_tokens": 70, "max_tokens": 10}
    assert output_tokens(Kind.CHAT, model, both, 100) == 70
    assert output_tokens(Kind.CHAT, model, {"max_tokens": 10}, 100) == 10
    defaulted = _model(parameters={"max_tokens": ParameterRule(default=48)})
    assert output_tokens(Kind.CHAT, defaulted, {}, 100) == 48
    assert output_tokens(Kind.CHAT, model, {}, 100) == 300  # the model's own bound
    assert output_tokens(Kind.CHAT, model, {}, 800) == 200  # what the context leaves
    assert output_tokens(Kind.CHAT, model, {}, 1200) == 0
    unbounded = _model(context_window=100_000)
    assert output_tokens(Kind.COMPLETIONS, unbounded, {}, 100) == OUTPUT_CAP
    for kind in (Kind.EMBEDDINGS, Kind.MODERATIONS):
        assert output_tokens(kind, model, {"max_tokens": 10}, 100) == 0


def test_reservation_is_prompt_plus_output_per_completion_asked() -> None:
    model = _model(price=Price(input_per_mtok=2, output_per_mtok=10))
    assert completions_asked({}) == 1
    assert completions_asked({"n": 3, "best_of": 5}) == 5
    most = estimate(Kind.CHAT, model, {"max_tokens": 100, "n": 3}, 50)
    assert (most.output_tokens, most.completions, most.reserved_tokens) == (100, 3, 350)
    assert most.cost_micros == cost_micros(model, 50, 300) == 50 * 2 + 300 * 10
    assert most.cost_usd == most.cost_micros / 1_000_000


@pytest.mark.parametrize(
    "payload",
    [
        {"max_tokens": 100},
        {},
        {"max_tokens": 50, "n": 3},
        {"max_completion_tokens": 70, "max_tokens": 10},
        {"best_of": 2},
        {"max_tokens": 900},
    ],
    ids=["max_tokens", "unset", "n=3", "max_completion_tokens", "best_of", "clamped"],
)
async def test_route_prediction_is_what_admission_reserves(
    payload: dict[str, Any], tmp_path: Path
) -> None:
    await _check_agreement(Kind.CHAT, payload, tmp_path)


async def test_embeddings_prediction_is_what_admission_reserves(tmp_path: Path) -> None:
    await _check_agreement(Kind.EMBEDDINGS, {"input": "a sentence to embed"}, tmp_path)


async def _check_agreement(kind: Kind, payload: dict[str, Any], tmp_path: Path) -> None:
    """For every candidate /v1/route lists, admitting the same request (after the model's
    parameter rules, as the pipeline does) reserves exactly the predicted cost."""
    store = SQLiteStore(tmp_path / "edgeroute.db")
    _, key = mint_key("k", limits=KeyLimits(tpm=10**12, budget_usd_micros=10**12))
    decision = decide_auto(REGISTRY, key, dict(payload), kind=kind, prompt_tokens=PROMPT_TOKENS)
    assert {x.model.name for x in decision.candidates} == {m.name for m in REGISTRY.models()}
    spent = 0
    for candidate in decision.candidates:
        model = candidate.model
        admitted = await admit(
            store, key, kind, model, apply_parameter_rules(model, dict(payload)), PROMPT_TOKENS
        )
        shown = candidate.as_json()["predicted_cost_usd"]
        assert round(shown * 1_000_000) == admitted.reserved_micros, model.name
        assert candidate.predicted_cost_usd == admitted.reserved_micros / 1_000_000, model.name
        spent += admitted.reserved_micros
        assert await store.get_counter(f"{key.key_id}#budget", _month_start(admitted.now)) == spent
    await store.close()


def test_a_max_tokens_default_is_priced_as_the_request_will_be_sent() -> None:
    model = REGISTRY.get("defaulted")
    assert model is not None
    filled = apply_parameter_rules(model, {})
    assert estimate(Kind.CHAT, model, {}, 10) == estimate(Kind.CHAT, model, filled, 10)
    assert estimate(Kind.CHAT, model, {}, 10).output_tokens == 48


# $0.02 / $0.05 per million tokens, and one output token per answer.
CHEAP = ModelSpec.model_validate(
    {
        "name": "cheap",
        "protocol": "openai",
        "endpoint": "http://cheap:1/v1",
        "tier": "small",
        "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.05},
        "parameters": {"max_tokens": {"min": 1, "max": 1, "default": 1, "rule": "clamp"}},
    }
)


def test_tiny_requests_are_charged_at_least_a_micro_dollar() -> None:
    # 3 tokens at $0.02 per million is $0.00000006: once rounded to $0, so a budget of
    # $0.0001 let tiny requests through without end.
    assert cost_micros(CHEAP, 3, 0) == 1
    assert cost_micros(CHEAP, 0, 0) == 0
    assert cost_micros(CHEAP, 1_000_000, 0) == 20_000  # exact figures stay exact
    assert cost_micros(CHEAP, 100, 100) == 7  # 2 + 5 micro-dollars


async def test_a_tiny_budget_stops_tiny_requests(tmp_path: Path) -> None:
    # A $0.00002 budget and requests of a few tokens on a $0.02/M model: each is charged
    # one micro-dollar when settled, so the twenty-first is refused, never run for free.
    from edgeroute.errors import RateLimited
    from edgeroute.pipeline.admit import reconcile

    store = SQLiteStore(tmp_path / "edgeroute.db")
    _, key = mint_key("k", limits=KeyLimits(budget_usd_micros=20))
    answered = 0
    with pytest.raises(RateLimited):
        for _ in range(100):
            payload = apply_parameter_rules(CHEAP, {"max_tokens": 1})
            admitted = await admit(store, key, Kind.CHAT, CHEAP, payload, 3)
            await reconcile(store, admitted, 4, cost_micros(CHEAP, 3, 1))
            answered += 1
    assert answered == 20
    await store.close()
