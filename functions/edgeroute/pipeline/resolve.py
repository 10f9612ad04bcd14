"""Named models: resolve the request's ``model`` into an ordered list of targets.

An explicitly named model (or alias) is honoured as asked, with only its declared
fallbacks, after checking that this key may use it and that it can serve this
request: route, capabilities (tools, JSON mode, images), parameters and context.
Targets that are down (circuit open, probe down) are skipped; only a model whose
registry entry says ``degrade: true`` may end on a lower-tier model it did not declare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeroute.config.registry import TIER_ORDER, ModelSpec, Protocol, Registry, Tier
from edgeroute.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    PermissionDenied,
    UpstreamUnavailable,
)
from edgeroute.health.availability import down_reason
from edgeroute.health.circuits import Health, circuit_key, circuit_open_until
from edgeroute.pipeline.autoroute import Decision
from edgeroute.pipeline.params import accepts, apply_parameter_rules
from edgeroute.pricing import estimate
from edgeroute.store.base import ApiKey
from edgeroute.types import Json, Kind
from edgeroute.wire.capabilities import required_capabilities
from edgeroute.wire.tokens import (
    bound_input_tokens,
    bound_prompt_tokens,
    estimate_input_tokens,
    estimate_prompt_tokens,
    estimate_tokens,
)


@dataclass
class Plan:
    """The ordered targets to try and why the first was chosen."""

    targets: list[ModelSpec]
    reason: str
    prompt_tokens: int  # the central estimate: context checks, usage nobody reported
    reserve_tokens: int  # at least the true count: what token limits and prices reserve
    min_tier: str | None = None
    candidates: list[Any] = field(default_factory=list)  # autoroute.Candidate, for /v1/route
    # An answer from below this tier is degraded (auto: the minimum tier; a named model:
    # its own), and why that would be: the targets above it that were down.
    tier_asked: Tier | None = None
    degrade_notes: list[str] = field(default_factory=list)
    # A named model with ``degrade: true``: lower-tier models to end on, best first.
    degrade: list[ModelSpec] = field(default_factory=list)
    rule: Json | None = None  # the policy rule that set the minimum tier, for /v1/route


def _prompt_tokens(kind: Kind, payload: Json) -> int:
    if kind is Kind.CHAT:
        return estimate_prompt_tokens(payload.get("messages") or [])
    return estimate_input_tokens(payload.get(kind.prompt_param))


def prompt_reservation(kind: Kind, payload: Json) -> int:
    """The prompt's tokens as admission reserves them: an upper bound, never less than
    the true count, so a flood of requests cannot pass a tokens-per-minute limit."""
    if kind is Kind.CHAT:
        return bound_prompt_tokens(payload.get("messages") or [])
    return bound_input_tokens(payload.get(kind.prompt_param))


def _context_tokens(kind: Kind, payload: Json, prompt_tokens: int) -> int:
    """What must fit the context window: the whole prompt, or for embeddings (each
    input embedded on its own) the longest input."""
    if kind is not Kind.EMBEDDINGS:
        return prompt_tokens
    source = payload.get("input")
    items = source if isinstance(source, list) else [source]
    return max(
        (estimate_tokens(s) if isinstance(s, str) else len(s) if isinstance(s, list) else 1)
        for s in items or [""]
    )


def _check_context(model: ModelSpec, kind: Kind, payload: Json, prompt_tokens: int) -> None:
    window = model.context_window
    if kind is Kind.EMBEDDINGS and (model.protocol is Protocol.EDGE or payload.get("truncate")):
        return  # the edge embedder counts exactly and truncates or refuses per input
    if prompt_tokens > window:
        param = kind.prompt_param
        raise ContextLengthExceeded(
            f"The '{param}' are about {prompt_tokens} tokens, more than model "
            f"'{model.name}''s context window of {window} tokens. Shorten '{param}' "
            "or choose a model with a larger context_window (GET /v1/models).",
            param=param,
        )
    if kind is Kind.EMBEDDINGS:
        return
    wanted = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if wanted and prompt_tokens + wanted > window:
        name = "max_completion_tokens" if payload.get("max_completion_tokens") else "max_tokens"
        raise ContextLengthExceeded(
            f"The prompt (about {prompt_tokens} tokens) plus '{name}' ({wanted}) exceeds "
            f"model '{model.name}''s context window of {window} tokens. Lower '{name}' to "
            f"at most {max(window - prompt_tokens, 1)}.",
            param=name,
        )


def plan(registry: Registry, principal: ApiKey, kind: Kind, payload: Json) -> Plan:
    """Resolve the named model, check the request against it, and list its fallbacks."""
    name = payload.get("model")
    model = registry.get(name) if isinstance(name, str) else None
    if model is None:
        raise NotFound(
            f"The model '{name}' does not exist. GET /v1/models lists the models this key can use.",
            param="model",
        )
    if not principal.allows(model.name):
        raise PermissionDenied(
            f"This API key may not use model '{model.name}'. Allowed: "
            f"{', '.join(principal.models)}. Ask an admin to extend the key.",
            param="model",
        )
    needed = required_capabilities(kind, payload)
    missing = sorted(c.value for c in needed if not model.supports(c))
    if missing:
        able = [
            m.name
            for m in registry.models()
            if all(m.supports(c) for c in needed) and principal.allows(m.name)
        ]
        hint = f"Models that can: {', '.join(able)}." if able else "No model here can."
        raise InvalidRequest(
            f"Model '{model.name}' does not support {', '.join(missing)}, which "
            f"{kind.path} with this body needs. {hint}",
            param="model",
            code="model_capability_missing",
        )
    apply_parameter_rules(model, payload)
    prompt_tokens = _prompt_tokens(kind, payload)
    context_tokens = _context_tokens(kind, payload, prompt_tokens)
    _check_context(model, kind, payload, context_tokens)
    targets = [model]

    def serves(other: ModelSpec | None) -> bool:
        return (
            other is not None
            and other not in targets
            and principal.allows(other.name)
            and all(other.supports(c) for c in needed)
            and context_tokens <= other.context_window
            and accepts(other, payload)
        )

    for fallback_name in model.fallbacks:
        fallback = registry.get(fallback_name)
        if fallback is not None and serves(fallback):
            targets.append(fallback)
    lower = [
        m
        for m in registry.models()
        if model.degrade
        and m.tier != "edge"
        and TIER_ORDER.index(m.tier) < TIER_ORDER.index(model.tier)
        and serves(m)
    ]
    lower.sort(key=lambda m: (-TIER_ORDER.index(m.tier), m.price.input_per_mtok))
    return Plan(
        targets=targets,
        reason="model named in the request",
        prompt_tokens=prompt_tokens,
        reserve_tokens=prompt_reservation(kind, payload),
        tier_asked=model.tier,
        degrade=lower,
    )


def plan_from_decision(
    decision: Decision, payload: Json, prompt_tokens: int, reserve_tokens: int
) -> Plan:
    """The router's choice as a plan, checked against the chosen model's parameter rules
    as a named model would be; fallbacks whose rules would refuse the request are dropped."""
    first, *rest = decision.targets
    apply_parameter_rules(first, payload)
    targets = [first]
    for model in rest:
        if accepts(model, payload):
            targets.append(model)
            continue
        for candidate in decision.candidates:
            if candidate.model is model:
                candidate.kept, candidate.why = False, "its parameter rules refuse this request"
    return Plan(
        targets=targets,
        reason=decision.reason,
        prompt_tokens=prompt_tokens,
        reserve_tokens=reserve_tokens,
        min_tier=decision.min_tier,
        candidates=decision.candidates,
        tier_asked=decision.min_tier,
        degrade_notes=decision.degrade_notes,
        rule=decision.rule,
    )


def skip_down(plan: Plan, health: Health, now: float) -> Plan:
    """Drop targets that are down (circuit open, probe down), end on the best healthy
    lower-tier model when the named model allows degrading; 503 when none is left."""
    down = {m.name: down_reason(m, health, now) for m in plan.targets}
    kept = [m for m in plan.targets if down[m.name] is None]
    lower = next((m for m in plan.degrade if down_reason(m, health, now) is None), None)
    plan.degrade_notes = [f"{m.name}: {down[m.name]}" for m in plan.targets if down[m.name]]
    plan.candidates = [
        {
            "model": m.name,
            "tier": m.tier,
            "kept": down[m.name] is None,
            "why": down[m.name] or ("named in the request" if i == 0 else "declared fallback"),
        }
        | ({"dropped": down[m.name]} if down[m.name] else {})
        for i, m in enumerate(plan.targets)
    ]
    if lower is not None:
        why = f"degrade fallback: below the tier asked for, {plan.tier_asked}"
        plan.candidates.append({"model": lower.name, "tier": lower.tier, "kept": True, "why": why})
        kept.append(lower)
    if kept:
        if plan.degrade_notes:
            plan.reason += f"; skipped {', '.join(plan.degrade_notes)}"
        plan.targets = kept
        return plan
    first = plan.targets[0]
    replicas = [r for r in first.replica_set if r.weight > 0]
    untils = [circuit_open_until(health.get(circuit_key(r)), now) for r in replicas]
    # Paused while every replica's circuit is open: until the first of them closes.
    until = min(u for u in untils if u is not None) if None not in untils else None
    subject = (
        f"Every replica of model '{first.name}'" if len(replicas) > 1 else f"Model '{first.name}'"
    )
    if until is None:
        raise UpstreamUnavailable(
            f"{subject} is down ({down[first.name]}), and no fallback is "
            "available. Retry later or call another model.",
            code="upstream_down",
            headers={"Retry-After": "30"},
            detail=f"endpoint {first.endpoint} is down: {down[first.name]}",
        )
    wait = max(int(until - now + 0.999), 1)
    raise UpstreamUnavailable(
        f"{subject} failed repeatedly and is paused for {wait} s more (circuit "
        f"open), and no fallback is available. Retry after {wait} s or call another model.",
        code="circuit_open",
        headers={"Retry-After": str(wait)},
        detail=f"circuit {circuit_key(first)} is open",
    )


def within_cost_ceiling(plan: Plan, kind: Kind, payload: Json, ceiling_usd: float) -> None:
    """A named model under ``x-edgeroute-max-cost``: drop fallbacks predicted to cost
    more (what admission would reserve for them), and refuse with 402 when the model
    itself would."""

    def predicted(model: ModelSpec) -> float:
        return estimate(kind, model, payload, plan.reserve_tokens).cost_usd

    first = plan.targets[0]
    cost = predicted(first)
    if cost > ceiling_usd:
        generates = kind in (Kind.CHAT, Kind.COMPLETIONS)
        smaller = "Lower 'max_tokens'" if generates else f"Shorten '{kind.prompt_param}'"
        routed = ', or send model "auto" to let the router pick a cheaper model'
        raise PaymentRequired(
            f"Model '{first.name}' could cost up to ${cost:.6f} for this request, over the "
            f"x-edgeroute-max-cost of ${ceiling_usd:.6f}. {smaller}, raise the ceiling"
            f"{routed if kind is not Kind.MODERATIONS else ''}.",
            param="x-edgeroute-max-cost",
        )
    plan.targets = [first, *(m for m in plan.targets[1:] if predicted(m) <= ceiling_usd)]
    plan.degrade = [m for m in plan.degrade if predicted(m) <= ceiling_usd]
