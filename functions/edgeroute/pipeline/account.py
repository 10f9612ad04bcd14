"""The account stage: turn what happened into a usage record (the gateway's
``UsageLedger`` writes it, spooling what the store cannot take)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace

from edgeroute.config.registry import ModelSpec
from edgeroute.edge.classifier import Classification
from edgeroute.pricing import cost_micros
from edgeroute.store.base import ApiKey, UsageRecord
from edgeroute.types import Json, Kind, Usage

_FIELD_MAX = 400  # a model name or a reason: enough to read, never a body


def usage_record(
    *,
    request_id: str,
    principal: ApiKey,
    kind: Kind,
    model: ModelSpec | None,
    usage: Usage,
    status: int,
    started: float,
    attempts: int,
    cache_hit: bool = False,
    degraded: str = "",
    asked: str = "",
    route_reason: str = "",
    payload: Json | None = None,
) -> UsageRecord:
    cost = cost_micros(model, usage.prompt_tokens, usage.completion_tokens) if model else 0
    return UsageRecord(
        request_id=request_id,
        key_id=principal.key_id,
        tenant=principal.tenant,
        endpoint=kind.value,
        model=model.name if model else "",
        tier=model.tier if model else "",
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd_micros=cost,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        status=status,
        created_at=time.time(),
        cache_hit=cache_hit,
        attempts=attempts,
        usage_estimated=usage.estimated,
        replica=model.replica_label if model else "",
        version=model.replica_version if model else "",
        degraded=degraded,
        asked=asked[:_FIELD_MAX],
        route_reason=route_reason[:_FIELD_MAX],
        fingerprint=fingerprint(payload) if payload is not None and status >= 400 else "",
    )


def classified(record: UsageRecord, classification: Classification | None) -> UsageRecord:
    """The ledger line with the request's task and complexity, when it was classified."""
    if classification is None:
        return record
    return replace(record, task=classification.task, complexity=round(classification.complexity, 4))


def fingerprint(payload: Json) -> str:
    """A request body's short hash, so the same failing request sent again is seen."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
