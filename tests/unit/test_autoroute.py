"""The routing decision as a pure function of classification, policy, health and limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from edgeroute.config.policy import load_policy, parse_policy
from edgeroute.config.registry import parse_registry
from edgeroute.edge.classifier import Classification
from edgeroute.errors import InvalidRequest, PaymentRequired, RateLimited, UpstreamUnavailable
from edgeroute.health.circuits import circuit_key
from edgeroute.pipeline.autoroute import Decision, Limits, decide
from edgeroute.store.base import ApiKey
from edgeroute.store.keys import mint_key
from edgeroute.types import Kind

REGISTRY = parse_registry(
    """
models:
  - {name: embed, protocol: edge, tier: edge, capabilities: [embeddings], context_window: 256}
  - {name: tiny, endpoint: 'http://small:1/v1', tier: small, capabilities: [chat],
     context_window: 4096, price: {input_per_mtok: 0.1, output_per_mtok: 0.2}}
  - {name: mid, endpoint: 'http://mid:1/v1', tier: medium, capabilities: [chat, vision, tools],
     context_window: 32768, price: {input_per_mtok: 1, output_per_mtok: 2}}
  - {name: big, endpoint: 'http://big:1/v1', tier: large, capabilities: [chat, tools],
     context_window: 131072, price: {input_per_mtok: 5, output_per_mtok: 15}}
""",
    "models.yaml",
)
POLICY = load_policy()
NOW = time.time()


def _c(
    task: str = "chat", complexity: float = 0.05, tokens: int = 20, **extra: Any
) -> Classification:
    return Classification(
        task=task,
        complexity=complexity,
        known_language=extra.get("language", "en"),
        prompt_tokens=tokens,
        modality=extra.get("modality", ("text",)),
    )


def _decide(
    c: Classification,
    name: str = "auto",
    key: ApiKey | None = None,
    health: dict[str, dict[str, Any]] | None = None,
    limits: Limits | None = None,
    payload: dict[str, Any] | None = None,
    kind: Kind = Kind.CHAT,
) -> Decision:
    return decide(
        name=name,
        kind=kind,
        payload=payload or {"max_tokens": 100},
        c=c,
        registry=REGISTRY,
        policy=POLICY,
        principal=key or mint_key("k")[1],
        health=health or {},
        limits=limits or Limits(),
        now=NOW,
    )


def _why(decision: Decision, model: str) -> str:
    return next(x.why for x in decision.candidates if x.model.name == model)


def test_greeting_goes_small_and_hard_code_goes_large() -> None:
    assert _decide(_c("chat", 0.05)).targets[0].name == "tiny"
    hard = _decide(_c("code", 0.8, tokens=900))
    assert hard.targets[0].name == "big"
    assert "complexity 0.80" in hard.reason
    assert [m.name for m in hard.targets] == ["big", "mid", "tiny"]  # then each tier down
    assert _why(hard, "tiny") == "degrade fallback: below the minimum tier large"


def test_complexity_cutoffs_pick_medium() -> None:
    decision = _decide(_c("summarize", 0.3))
    assert decision.min_tier == "medium" and decision.targets[0].name == "mid"
    assert [m.name for m in decision.targets] == ["mid", "big", "tiny"]  # up, then degrade
    assert _why(decision, "tiny") == "degrade fallback: below the minimum tier medium"


def test_virtual_names() -> None:
    assert _decide(_c("summarize", 0.3), name="auto:cheap").targets[0].name == "tiny"
    assert _decide(_c("chat", 0.05), name="auto:best").targets[0].name == "big"
    assert _decide(_c("chat", 0.05), name="medium").targets[0].name == "mid"
    assert _decide(_c(), kind=Kind.EMBEDDINGS).targets[0].name == "embed"


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
WITH_IMAGE = {
    "max_tokens": 100,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "what?"}, IMAGE]}],
}


def test_image_needs_vision_or_a_clear_400() -> None:
    decision = _decide(_c(modality=("text", "image")), payload=WITH_IMAGE)
    assert [m.name for m in decision.targets] == ["mid"]
    assert _why(decision, "tiny") == "cannot do vision"
    _, no_vision = mint_key("nv", models=("tiny", "big"))
    with pytest.raises(InvalidRequest, match="image"):
        _decide(_c(modality=("text", "image")), key=no_vision, payload=WITH_IMAGE)


def test_capabilities_come_from_the_body_not_the_classifier() -> None:
    # The classifier's modality steers routing rules; what a model must support is read
    # from the body, as for a named model.
    assert "vision" not in _why(_decide(_c(modality=("text", "image"))), "tiny")
    decision = _decide(_c(), payload=WITH_IMAGE)
    assert _why(decision, "tiny") == "cannot do vision"


def test_open_circuit_is_skipped() -> None:
    tiny = REGISTRY.get("tiny")
    assert tiny is not None
    health = {circuit_key(tiny): {"circuit_open_until": NOW + 15}}
    decision = _decide(_c("chat", 0.05), health=health)
    assert decision.targets[0].name == "mid"
    assert "circuit open" in _why(decision, "tiny")


def test_congested_tier_moves_low_priority_keys_down() -> None:
    health = {"http://big:1/v1": {"queue_depth": 80}}
    low = _decide(_c("code", 0.8), health=health)
    assert low.targets[0].name == "mid"
    assert "moved down to medium" in low.reason
    assert "queue 80 > 32" in _why(low, "big")
    _, vip = mint_key("vip", priority=5)
    assert _decide(_c("code", 0.8), health=health, key=vip).targets[0].name == "big"


def test_cost_ceiling_moves_down_or_refuses() -> None:
    big = _decide(_c("code", 0.8, tokens=1000))
    big_cost = next(x.predicted_cost_usd for x in big.candidates if x.model.name == "big")
    capped = _decide(_c("code", 0.8, tokens=1000), limits=Limits(max_cost_usd=big_cost / 2))
    assert capped.targets[0].tier in ("medium", "small")
    assert "x-edgeroute-max-cost" in _why(capped, "big")
    with pytest.raises(PaymentRequired):
        _decide(_c("code", 0.8, tokens=1000), limits=Limits(max_cost_usd=1e-12))
    with pytest.raises(RateLimited, match="budget"):
        _decide(_c("code", 0.8, tokens=1000), limits=Limits(budget_left_usd=0.0))


def test_key_permissions_and_context() -> None:
    _, only_big = mint_key("b", models=("big",))
    assert _decide(_c(), key=only_big).targets[0].name == "big"
    long = _decide(_c("summarize", 0.2, tokens=5000))
    assert "context window 4096" in _why(long, "tiny")
    assert long.targets[0].name == "mid"


def test_nothing_left_is_503_with_reasons() -> None:
    health = {
        circuit_key(m): {"circuit_open_until": NOW + 9}
        for m in REGISTRY.models()
        if m.protocol.value != "edge"
    }
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        _decide(_c(), health=health)


def test_policy_errors_name_file_and_rule() -> None:
    from edgeroute.errors import ConfigError

    with pytest.raises(ConfigError, match=r"routing.yaml: rules.bad.tier"):
        parse_policy("rules:\n  - {name: bad, when: {task: [chat]}, tier: huge}", "routing.yaml")


def test_nothing_at_the_minimum_tier_moves_down_instead_of_failing() -> None:
    _, only_tiny = mint_key("t", models=("tiny",))
    decision = _decide(_c("chat", 0.05), name="auto:best", key=only_tiny)
    assert decision.targets[0].name == "tiny"
    assert "moved down" in decision.reason


def test_n_multiplies_the_predicted_output_cost() -> None:
    one = _decide(_c("code", 0.8), payload={"max_tokens": 100})
    four = _decide(_c("code", 0.8), payload={"max_tokens": 100, "n": 4})
    cost = {x.model.name: x.predicted_cost_usd for x in one.candidates}
    cost4 = {x.model.name: x.predicted_cost_usd for x in four.candidates}
    assert cost4["big"] > cost["big"] * 3


def test_default_cutoffs_are_the_example_policys() -> None:
    # Both are the tuning split's choice for the shipped tier head (train_routing.py).
    assert parse_policy("{}", "defaults").complexity_cutoffs == POLICY.complexity_cutoffs
