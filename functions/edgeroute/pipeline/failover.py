"""What a failed attempt tells operators, and whether the answer that followed is degraded.

An answer is degraded when the model that gave it sits below the tier the request asked
for (``Plan.tier_asked``: auto's minimum tier, or the named model's own): the targets at
or above it were down or failed. The reason says which and why, for the caller
(``x-edgeroute-degraded-reason``), the ledger and the audit record.

Credential failures (an upstream's 401/403, a secret edgeroute cannot read) do not heal
on their own: each one is an ERROR log line naming the model and its endpoint (never
the credential) and an ``UpstreamAuthFailures`` metric, for an alarm.
"""

from __future__ import annotations

import logging

from edgeroute.config.registry import TIER_ORDER, ModelSpec
from edgeroute.errors import EdgerouteError, UpstreamAuthFailed
from edgeroute.pipeline import metrics
from edgeroute.pipeline.resolve import Plan

log = logging.getLogger("edgeroute.pipeline.failover")

_REASON_MAX = 400  # a header, a ledger field: enough to name a few targets and why


def attempt_failed(model: ModelSpec, error: EdgerouteError, failures: list[str]) -> None:
    """Note a failed attempt for the degraded reason; raise the operator's signal when
    the failure is the gateway's configuration."""
    failures.append(f"{model.name}: {error.code}")
    if isinstance(error, UpstreamAuthFailed):
        log.error(
            "model '%s' at %s cannot be called: %s. An operator must fix its credential; "
            "traffic goes to its fallbacks meanwhile",
            model.name,
            model.endpoint or model.protocol.value,
            error.code,
        )
        metrics.upstream_auth_failure(model.name)


def degraded_reason(plan: Plan, model: ModelSpec, failures: list[str]) -> str:
    """Why ``model``'s answer is degraded, or '' when it is not."""
    if plan.tier_asked is None or TIER_ORDER.index(model.tier) >= TIER_ORDER.index(plan.tier_asked):
        return ""
    causes = [*plan.degrade_notes, *failures] or [f"no {plan.tier_asked} model was usable"]
    reason = f"answered by {model.tier} below {plan.tier_asked}: " + "; ".join(causes)
    return reason if len(reason) <= _REASON_MAX else reason[: _REASON_MAX - 3] + "..."
