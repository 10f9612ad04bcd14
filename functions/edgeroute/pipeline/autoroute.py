"""Routing for virtual model names: ``auto``, ``auto:cheap``, ``auto:best`` and the tiers.

From the classification and the policy comes the request's minimum tier; every
registry model is then a candidate, kept or dropped with a reason (permission,
capability, context window, health, congestion, cost). The kept ones, cheapest
sufficient first, are the targets; the rest explain the decision on ``/v1/route``.

Health routes (``health/availability``): a target whose circuit is open or whose probe
says down is dropped. When nothing at or above the minimum tier is left, or as the last
target after those that are, the policy's ``degrade`` lets the best healthy lower tier
answer; the answer is then labelled degraded (``pipeline/failover``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeroute.config.policy import Policy, Rule
from edgeroute.config.registry import (
    RESERVED_NAMES,
    TIER_ORDER,
    ModelSpec,
    Registry,
    Tier,
)
from edgeroute.edge.classifier import Classification
from edgeroute.errors import (
    BudgetExceeded,
    ContextLengthExceeded,
    InvalidRequest,
    PaymentRequired,
    UpstreamUnavailable,
)
from edgeroute.health.availability import down_reason
from edgeroute.health.circuits import Health, queue_depth
from edgeroute.pricing import estimate
from edgeroute.store.base import ApiKey
from edgeroute.types import Capability, Json, Kind
from edgeroute.wire.capabilities import required_capabilities

TIER_NAMES: frozenset[str] = frozenset(TIER_ORDER)
VIRTUAL: frozenset[str] = RESERVED_NAMES
_GENERATING: tuple[Tier, ...] = ("small", "medium", "large")
_ROUTED_BY_RULES = frozenset({"auto", "auto:cheap"})  # the names policy rules decide for


@dataclass
class Candidate:
    model: ModelSpec
    predicted_cost_usd: float
    kept: bool = True
    why: str = ""
    dropped: str | None = None  # down by its health: "probe: down since ..." / "circuit open ..."

    def as_json(self) -> dict[str, Any]:
        shown = {
            "model": self.model.name,
            "tier": self.model.tier,
            "predicted_cost_usd": round(self.predicted_cost_usd, 8),
            "kept": self.kept,
            "why": self.why,
        }
        return shown | ({"dropped": self.dropped} if self.dropped else {})


@dataclass
class Decision:
    targets: list[ModelSpec]
    reason: str
    min_tier: Tier
    candidates: list[Candidate] = field(default_factory=list)
    # Why an answer from below min_tier would be degraded: targets at or above it that
    # are down, and moves down (congestion, cost).
    degrade_notes: list[str] = field(default_factory=list)
    rule: Json | None = None  # the policy rule that set the minimum tier, for /v1/route


@dataclass(frozen=True)
class Limits:
    """What the caller may spend on this request, if anything caps it."""

    max_cost_usd: float | None = None  # the x-edgeroute-max-cost header
    budget_left_usd: float | None = None  # what remains of the key's monthly budget


def _matches(rule: Rule, c: Classification, principal: ApiKey, now: float) -> bool:
    w = rule.when
    return (
        (not w.task or c.task in w.task)
        and (not w.language or c.language in w.language)
        and (not w.modality or any(m in c.modality for m in w.modality))
        and (w.complexity_at_least is None or c.complexity >= w.complexity_at_least)
        and (w.complexity_below is None or c.complexity < w.complexity_below)
        and (w.prompt_tokens_at_least is None or c.prompt_tokens >= w.prompt_tokens_at_least)
        and (not w.key_name or principal.name in w.key_name)
        and (w.priority_below is None or principal.priority < w.priority_below)
        and (w.schedule is None or w.schedule.covers(now))
    )


def matching_rule(policy: Policy, c: Classification, principal: ApiKey, now: float) -> Rule | None:
    """The first policy rule that holds for this request at epoch time ``now``."""
    return next((r for r in policy.rules if _matches(r, c, principal, now)), None)


def rule_json(rule: Rule) -> Json:
    """A matched rule as ``/v1/route`` shows it."""
    shown: Json = {"name": rule.name, "tier": rule.tier}
    if rule.when.schedule is not None:
        shown["schedule"] = rule.when.schedule.describe()
    return shown


def minimum_tier(
    name: str,
    kind: Kind,
    c: Classification,
    policy: Policy,
    rule: Rule | None = None,
) -> tuple[Tier, str]:
    """The cheapest tier this request may go to, and why; ``rule`` is the policy rule
    that holds for it (``matching_rule``), if any."""
    if kind is Kind.EMBEDDINGS:
        return "edge", "embeddings are served from the edge tier up"
    if name in TIER_NAMES:
        tier: Tier = name  # type: ignore[assignment]  # `in TIER_NAMES` does not narrow to Tier
        return (tier if tier != "edge" else "small"), f"tier '{name}' asked for"
    if name == "auto:best":
        return "large", "auto:best asks for the most capable tier"
    if rule is not None:
        tier, why = rule.tier, f"rule '{rule.name}'"
        if rule.when.schedule is not None:
            why += f" ({rule.when.schedule.describe()})"
    else:
        tier = policy.tier_for_complexity(c.complexity)
        why = f"complexity {c.complexity:.2f}"
    if tier == "edge":
        tier = "small"  # the edge tier does not generate text
    if name == "auto:cheap" and tier != "small":
        tier = _GENERATING[_GENERATING.index(tier) - 1]
        why += ", one tier down for auto:cheap"
    return tier, f"task {c.task}, {why} -> {tier}"


def decide(
    *,
    name: str,
    kind: Kind,
    payload: Json,
    c: Classification,
    registry: Registry,
    policy: Policy,
    principal: ApiKey,
    health: Health,
    limits: Limits,
    now: float,
    reserve_tokens: int | None = None,
) -> Decision:
    """``reserve_tokens``: the prompt as admission will reserve it (default: the
    classification's count), which prices the candidates."""
    ruled = name in _ROUTED_BY_RULES and kind is not Kind.EMBEDDINGS
    rule = matching_rule(policy, c, principal, now) if ruled else None
    min_tier, why_tier = minimum_tier(name, kind, c, policy, rule)
    needed = required_capabilities(kind, payload)
    low = TIER_ORDER.index(min_tier)
    candidates: list[Candidate] = []
    fits: set[str] = set()  # models whose context window holds the prompt and the output
    for model in sorted(registry.models(), key=lambda m: (TIER_ORDER.index(m.tier), m.name)):
        # The cost admission will reserve for this model, so /v1/route shows what is charged.
        most = estimate(kind, model, payload, reserve_tokens or c.prompt_tokens)
        out = most.output_tokens
        if kind is Kind.EMBEDDINGS or c.prompt_tokens + out <= model.context_window:
            fits.add(model.name)
        candidate = Candidate(model, most.cost_usd)
        candidates.append(candidate)
        missing = sorted(cap.value for cap in needed if not model.supports(cap))
        down = down_reason(model, health, now)
        if missing:
            candidate.kept, candidate.why = False, f"cannot do {', '.join(missing)}"
        elif not principal.allows(model.name):
            candidate.kept, candidate.why = False, "this key may not use it"
        elif model.name not in fits:
            candidate.kept = False
            candidate.why = (
                f"needs ~{c.prompt_tokens + out} tokens, context window {model.context_window}"
            )
        elif down is not None:
            candidate.kept, candidate.why, candidate.dropped = False, down, down
    # Within a tier, cheapest first.
    candidates.sort(key=lambda x: (TIER_ORDER.index(x.model.tier), x.predicted_cost_usd))
    usable = [x for x in candidates if x.kept]
    if not usable:
        able = [
            m
            for m in registry.models()
            if principal.allows(m.name) and all(map(m.supports, needed))
        ]
        if not able:
            wanted = ", ".join(sorted(cap.value for cap in needed))
            hint = (
                " The request has image parts: remove them, or ask an admin for a vision model."
                if Capability.VISION in needed
                else " Ask an admin for a model that can."
            )
            raise InvalidRequest(
                f"No model this key may use can do all of: {wanted}.{hint}",
                param="messages" if Capability.VISION in needed else "model",
                code="model_capability_missing",
            )
        if not any(m.name in fits for m in able):
            raise _too_long(kind, payload, c.prompt_tokens, able)
        raise UpstreamUnavailable(
            "No model can take this request right now: "
            + "; ".join(f"{x.model.name}: {x.why}" for x in candidates),
            headers={"Retry-After": "10"},
        )
    preferred = [x for x in usable if TIER_ORDER.index(x.model.tier) >= low]
    below = [x for x in usable if TIER_ORDER.index(x.model.tier) < low]
    for x in below:
        x.why = f"below the minimum tier {min_tier}"
    notes: list[str] = []
    down_above = [
        f"{x.model.name}: {x.dropped}"
        for x in candidates
        if x.dropped and TIER_ORDER.index(x.model.tier) >= low
    ]
    if not preferred and down_above and not policy.degrade:
        raise UpstreamUnavailable(
            f"Every model at tier {min_tier} or above is down ({'; '.join(down_above)}), and "
            "the routing policy does not degrade to a lower tier. Retry later.",
            headers={"Retry-After": "10"},
        )
    if not preferred:
        # Nothing usable at or above the minimum tier (down, the key's models): answer
        # from the best tier below rather than not at all, and say so.
        preferred = sorted(
            below, key=lambda x: (-TIER_ORDER.index(x.model.tier), x.predicted_cost_usd)
        )
        below = []
        for x in preferred:
            x.why = ""
        notes.append(f"nothing usable at {min_tier} or above: moved down")
    preferred, below = _congestion(preferred, below, principal, policy, health, notes)
    chosen = _by_cost(preferred, below, limits, notes)
    for index, x in enumerate(chosen):
        x.why = x.why or ("chosen" if index == 0 else "fallback")
    tried = chosen[: policy.max_attempts]
    if policy.degrade and all(TIER_ORDER.index(x.model.tier) >= low for x in chosen):
        lower = [x for x in _degrade_fallback(usable, chosen, low) if _fits(x, limits)]
        chosen, tried = chosen + lower, tried + lower
    for x in usable:
        if x not in chosen:
            x.kept = False
    targets = [x.model for x in tried]
    first = targets[0]
    reason = f"{why_tier}; {first.name} is the cheapest {first.tier} model that fits"
    if notes:
        reason += "; " + "; ".join(notes)
    return Decision(
        targets=targets,
        reason=reason,
        min_tier=min_tier,
        candidates=candidates,
        degrade_notes=down_above + notes,
        rule=rule_json(rule) if rule is not None else None,
    )


def _degrade_fallback(
    usable: list[Candidate], chosen: list[Candidate], low: int
) -> list[Candidate]:
    """Tried after every target at or above the minimum tier failed: the cheapest healthy
    model of each generating tier below it, best tier first, so the request can end on
    the lowest (a laptop's local model) rather than not at all."""
    lower: dict[str, Candidate] = {}
    for x in sorted(usable, key=lambda x: (-TIER_ORDER.index(x.model.tier), x.predicted_cost_usd)):
        if x not in chosen and TIER_ORDER.index(x.model.tier) < low and x.model.tier in _GENERATING:
            lower.setdefault(x.model.tier, x)
    for x in lower.values():
        x.why = f"degrade fallback: below the minimum tier {TIER_ORDER[low]}"
    return list(lower.values())


def _too_long(
    kind: Kind, payload: Json, prompt_tokens: int, able: list[ModelSpec]
) -> ContextLengthExceeded:
    """No model that could serve the request has the context for it: the caller's to fix
    (a 400, as OpenAI answers; waiting would not help)."""
    largest = max(able, key=lambda m: m.context_window)
    window = largest.context_window
    where = (
        f"the context window of every model this key may use for it (the largest: "
        f"'{largest.name}', {window} tokens)"
    )
    param = kind.prompt_param
    name = "max_completion_tokens" if payload.get("max_completion_tokens") else "max_tokens"
    wanted = payload.get(name)
    if prompt_tokens < window and isinstance(wanted, int):
        return ContextLengthExceeded(
            f"The prompt (about {prompt_tokens} tokens) plus '{name}' ({wanted}) exceeds "
            f"{where}. Lower '{name}' to at most {window - prompt_tokens}, or shorten '{param}'.",
            param=name,
        )
    if prompt_tokens < window:  # the prompt fits, the output the models reserve does not
        return ContextLengthExceeded(
            f"The '{param}' are about {prompt_tokens} tokens, which leaves too little of "
            f"{where} for the answer. Shorten '{param}', or send a 'max_tokens' of at most "
            f"{window - prompt_tokens}.",
            param=param,
        )
    return ContextLengthExceeded(
        f"The '{param}' are about {prompt_tokens} tokens, more than {where}. Shorten '{param}'.",
        param=param,
    )


def _congestion(
    preferred: list[Candidate],
    below: list[Candidate],
    principal: ApiKey,
    policy: Policy,
    health: Health,
    notes: list[str],
) -> tuple[list[Candidate], list[Candidate]]:
    """For low-priority keys, endpoints queueing over their tier's limit go last; when
    that is every model of the chosen tier, the request moves down one tier."""
    if not preferred or principal.priority >= policy.congestion.priority_below:
        return preferred, below
    busy: list[Candidate] = []
    for x in preferred:
        limit = policy.congestion.max_waiting.get(x.model.tier)
        depth = queue_depth(health.get(x.model.endpoint))
        if limit is not None and depth is not None and depth > limit:
            x.why = f"queue {depth} > {limit} for priority {principal.priority} keys"
            busy.append(x)
    if not busy:
        return preferred, below
    calm = [x for x in preferred if x not in busy]
    tier = preferred[0].model.tier
    if any(x.model.tier == tier for x in calm):
        notes.append(f"skipped busy {', '.join(x.model.name for x in busy)}")
        return calm + busy, below
    lower = [x for x in below if x.model.tier in _GENERATING]
    if not lower:
        return calm + busy, below
    target = max((x.model.tier for x in lower), key=TIER_ORDER.index)
    moved = [x for x in lower if x.model.tier == target]
    for x in moved:
        x.why = ""
    notes.append(f"moved down to {target}: every {tier} endpoint is over its queue limit")
    return moved + calm + busy, [x for x in below if x not in moved]


def _fits(x: Candidate, limits: Limits) -> bool:
    ceilings = (limits.max_cost_usd, limits.budget_left_usd)
    return all(c is None or x.predicted_cost_usd <= c for c in ceilings)


def _by_cost(
    preferred: list[Candidate], below: list[Candidate], limits: Limits, notes: list[str]
) -> list[Candidate]:
    """Keep what fits the cost ceiling; move down a tier (cheapest first) if nothing does."""
    caps = [
        (value, label)
        for value, label in (
            (limits.max_cost_usd, "x-edgeroute-max-cost"),
            (limits.budget_left_usd, "remaining monthly budget"),
        )
        if value is not None
    ]
    if not caps:
        return preferred
    ceiling, label = min(caps)
    fitting = [x for x in preferred if x.predicted_cost_usd <= ceiling]
    for x in preferred:
        if x.predicted_cost_usd > ceiling:
            x.kept = False
            x.why = f"predicted ${x.predicted_cost_usd:.6f} > {label} ${ceiling:.6f}"
    if fitting:
        return fitting
    cheaper = sorted(
        (x for x in below if x.predicted_cost_usd <= ceiling and x.model.tier in _GENERATING),
        key=lambda x: -TIER_ORDER.index(x.model.tier),
    )
    if cheaper:
        for x in cheaper:
            x.why = ""
        notes.append(f"moved down to {cheaper[0].model.tier} to fit the {label}")
        return cheaper
    message = (
        f"No model fits the {label} of ${ceiling:.6f} for this request (cheapest "
        f"predicted ${min(x.predicted_cost_usd for x in preferred + below):.6f}). "
        "Raise the limit, lower 'max_tokens', or shorten the prompt."
    )
    if label == "x-edgeroute-max-cost":
        raise PaymentRequired(message, param="x-edgeroute-max-cost")
    raise BudgetExceeded(message)
