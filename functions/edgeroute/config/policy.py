"""The routing policy as data: which tier a classified request needs, and when to move it.

Loaded from YAML (``EDGEROUTE_POLICY``, ``infra/routing.yaml`` by default) and
validated with pydantic; errors name the file and the field.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from edgeroute.config.loading import StrictModel, bundled, parse_yaml, read_text, validated
from edgeroute.config.registry import TIER_ORDER, Tier
from edgeroute.config.schedule import Schedule

DEFAULT_POLICY = Path(bundled("routing.yaml"))


class Match(StrictModel):
    """Conditions over the classification, the caller's key and the time; every
    condition given must hold."""

    task: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    modality: tuple[str, ...] = ()  # any of: text, image, tools
    complexity_at_least: float | None = Field(default=None, ge=0, le=1)
    complexity_below: float | None = Field(default=None, ge=0, le=1)
    prompt_tokens_at_least: int | None = Field(default=None, ge=0)
    key_name: tuple[str, ...] = ()  # the API key's name, as `edgeroute keys create --name`
    priority_below: int | None = None  # keys whose priority is lower than this
    schedule: Schedule | None = None  # days, hours and time zone (config/schedule.py)


class Rule(StrictModel):
    name: str
    when: Match
    tier: Tier


class Congestion(StrictModel):
    """When a tier's endpoints queue more than ``max_waiting`` requests, keys with a
    priority below ``priority_below`` are moved down one tier."""

    max_waiting: dict[Tier, int] = Field(default_factory=dict)
    priority_below: int = 1


class Circuit(StrictModel):
    failures_to_open: int = Field(default=3, ge=1)
    window_s: int = Field(default=60, ge=1)
    cool_down_s: float = Field(default=20.0, gt=0)


def _default_cutoffs() -> dict[Tier, float]:
    """The cut-offs chosen on the tuning split for the shipped tier head (the example policy
    infra/routing.yaml carries the same; a unit test keeps them equal)."""
    return {"small": 0.09, "medium": 0.52}


class Policy(StrictModel):
    tiers: tuple[Tier, ...] = TIER_ORDER
    complexity_cutoffs: dict[Tier, float] = Field(default_factory=_default_cutoffs)
    rules: tuple[Rule, ...] = ()
    congestion: Congestion = Congestion()
    circuit: Circuit = Circuit()
    health_ttl_s: float = Field(default=2.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    # When every target at or above the request's minimum tier is down or fails, answer
    # from the healthy lower tiers, best first (labelled degraded), rather than not at all.
    degrade: bool = True

    @model_validator(mode="after")
    def _tiers_in_cost_order(self) -> Policy:
        order = [TIER_ORDER.index(t) for t in self.tiers]
        if order != sorted(order) or len(set(order)) != len(order):
            raise ValueError(f"tiers must be in cost order {list(TIER_ORDER)}, once each")
        return self

    def tier_for_complexity(self, complexity: float) -> Tier:
        """The cheapest generating tier whose cut-off the complexity stays under."""
        for tier in ("small", "medium"):
            cutoff = self.complexity_cutoffs.get(tier)
            if cutoff is not None and complexity < cutoff:
                return tier
        return "large"


def parse_policy(text: str, source: str) -> Policy:
    return validated(Policy, parse_yaml(text, source) or {}, source, "rules")


def load_policy(location: str | Path | None = None) -> Policy:
    """Load and validate the policy from a path or ``s3://`` URI (default: the example)."""
    where = str(location or DEFAULT_POLICY)
    return parse_policy(read_text(where, "routing policy", "EDGEROUTE_POLICY"), where)
