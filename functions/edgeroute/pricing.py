"""What a request may use and cost: one output-token estimate, one reservation, one price.

Invariant: every stage that prices a request prices it here, so they agree: admission
(the token reservation and the budget), the router's candidate cost (what ``/v1/route``
shows), the named-model cost ceiling (``x-edgeroute-max-cost``) and settlement. The cost
the router predicts for a model is exactly what admission reserves for it.

Costs are integer micro-dollars, the unit budgets and the usage ledger count in; a cost
in dollars is those micro-dollars / 1e6. This module sits at the bottom of the import
graph: it imports ``types`` and ``config.registry`` and nothing above them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeroute.config.registry import ModelSpec
from edgeroute.types import Json, Kind

OUTPUT_CAP = 4096
"""Output tokens assumed per completion when neither the request nor the model bounds
them. Upstreams then generate until the context is full; the cap keeps one such request
from reserving a whole large context against the key's quotas (settlement gives back
or adds what the call really used)."""

_GENERATING = frozenset({Kind.CHAT, Kind.COMPLETIONS})


def output_tokens(kind: Kind, model: ModelSpec, payload: Json, prompt_tokens: int) -> int:
    """The most one completion of this request may generate, by the first rule that applies:

    1. embeddings and moderations generate nothing: 0;
    2. the request's ``max_completion_tokens``, else its ``max_tokens``, clamped as the
       model's ``max_tokens`` clamp rule will clamp it before the call;
    3. the model's ``max_tokens`` parameter default (what the parameter rules fill in);
    4. ``min(model.max_output_tokens or OUTPUT_CAP, context window left after the prompt)``.
    """
    if kind not in _GENERATING:
        return 0
    wanted = payload.get("max_completion_tokens") or payload.get("max_tokens")
    rule = model.parameters.get("max_tokens")
    if isinstance(wanted, int):
        if rule is not None and rule.rule == "clamp":
            return int(rule.clamp(wanted))
        return wanted
    if rule is not None and rule.default is not None:
        return int(rule.default)
    return min(model.max_output_tokens or OUTPUT_CAP, max(model.context_window - prompt_tokens, 0))


def completions_asked(payload: Json) -> int:
    """How many completions one request may generate (``n``, or ``best_of``)."""
    counts = [v for v in (payload.get("n"), payload.get("best_of")) if isinstance(v, int)]
    return max([1, *counts])


def cost_micros(model: ModelSpec, prompt_tokens: int, completion_tokens: int) -> int:
    """What these tokens cost on this model, in integer micro-dollars, rounded up: a
    request that costs anything is charged at least one, so nothing priced passes as free
    (a stream of tiny requests past a budget, or under an ``x-edgeroute-max-cost`` of 0)."""
    price = model.price
    # Dollars per million tokens times tokens is micro-dollars; the epsilon keeps float
    # noise (0.1 + 0.2) from adding a micro-dollar to an exact figure.
    exact = prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
    return math.ceil(exact - 1e-9) if exact > 0 else 0


@dataclass(frozen=True)
class Estimate:
    """The most one request may use and cost on one model: what admission reserves."""

    prompt_tokens: int
    output_tokens: int  # per completion
    completions: int
    cost_micros: int

    @property
    def reserved_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens * self.completions

    @property
    def cost_usd(self) -> float:
        return self.cost_micros / 1_000_000


def estimate(kind: Kind, model: ModelSpec, payload: Json, prompt_tokens: int) -> Estimate:
    """Prompt plus the most the call may generate (output x completions asked), and its cost."""
    output = output_tokens(kind, model, payload, prompt_tokens)
    completions = completions_asked(payload)
    cost = cost_micros(model, prompt_tokens, output * completions)
    return Estimate(prompt_tokens, output, completions, cost)
