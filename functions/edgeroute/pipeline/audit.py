"""The audit trail: one structured JSON record per request on the ``edgeroute.audit``
logger (in Powertools' JSON shape), and, for keys that ask, the prompt and answer in the
archive.

Invariant: every request the pipeline settles or refuses gets exactly one record,
emitted when it settles (``run.settle``, ``run.account_failure``); requests that never
become a call (no key, a bad body, a route with nothing to settle) get theirs from the
API layer. A record has every field, always, with a fixed type ('' or 0 when unknown):
it names the key by id, never the key, and holds no prompt or answer text. Bodies are
written after the answer is sent, and a failure to write them is logged, never raised.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass

from edgeroute.pipeline.call import Call
from edgeroute.settings import Settings
from edgeroute.store.archive import Archive, open_archive
from edgeroute.store.base import ApiKey, UsageRecord
from edgeroute.types import Json

AUDIT_LOGGER = "edgeroute.audit"
AUDIT_MESSAGE = "request"


class AuditFormatter(logging.Formatter):
    """The line Powertools' JSON formatter prints for ``Logger(service=AUDIT_LOGGER)``,
    key for key and in its order (level, location, message, timestamp, service, the
    record's fields, X-Ray's trace id when there is one), for a quarter of the CPU:
    Powertools' generic formatter took ~25 us of the ~39 us an audit line cost."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.localtime(record.created)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", created)
        line = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": f"{stamp},{int(record.msecs):03d}{time.strftime('%z', created)}",
            "service": AUDIT_LOGGER,
            **getattr(record, "audit", {}),
        }
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if trace:
            line["xray_trace_id"] = trace.split(";")[0].replace("Root=", "")
        return json.dumps(line, default=str, separators=(",", ":"))


# Its own logger at INFO whatever LOG_LEVEL says (an audit record is not a debug line),
# printing JSON to stdout once: not again through the root logger Lambda installs.
_logger = logging.getLogger(AUDIT_LOGGER)
_logger.setLevel(logging.INFO)
_logger.propagate = False
_handler = logging.StreamHandler(sys.stdout)
_handler.setFormatter(AuditFormatter())
_logger.addHandler(_handler)

log = logging.getLogger("edgeroute.pipeline.audit")


@dataclass(frozen=True)
class AuditRecord:
    """What happened to one request, without its text."""

    request_id: str
    key_id: str  # '' when no key was authenticated
    tenant: str
    client_address: str
    endpoint: str  # the route, as /v1/chat/completions
    model: str
    tier: str
    route_reason: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd_micros: int
    status: int
    latency_ms: float
    cache: str  # hit, miss or bypass
    attempts: int
    pii_classes: list[str]  # personal-data classes masked before forwarding
    guardrail: str  # the guardrail's outcome; 'not run' when none ran
    created_at: float  # epoch seconds
    bodies_kept: bool  # prompt and answer are in the archive
    degraded: str  # why a model below the tier asked for answered; '' when none did

    def as_json(self) -> Json:
        # vars(), not dataclasses.asdict: that deep-copies field by field, ~3x the cost.
        return {**vars(self), "pii_classes": list(self.pii_classes)}


def call_record(call: Call, usage: UsageRecord, bodies_kept: bool) -> AuditRecord:
    """The record of a call the pipeline settled or refused, from its ledger line."""
    return AuditRecord(
        request_id=call.request_id,
        key_id=usage.key_id,
        tenant=usage.tenant,
        client_address=call.client_address or "",
        endpoint=call.kind.path,
        model=usage.model,
        tier=usage.tier,
        route_reason=call.route_reason,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd_micros=usage.cost_usd_micros,
        status=usage.status,
        latency_ms=usage.latency_ms,
        cache=call.cache_status,
        attempts=usage.attempts,
        pii_classes=list(call.pii_classes),
        guardrail=call.guardrail or "not run",
        created_at=usage.created_at,
        bodies_kept=bodies_kept,
        degraded=usage.degraded,
    )


def request_record(
    *,
    request_id: str,
    principal: ApiKey | None,
    client_address: str | None,
    endpoint: str,
    status: int,
    started: float,
) -> AuditRecord:
    """The record of a request that never became a settled call: refused before (no
    key, a bad body) or served without the pipeline (``/v1/models``, ``/v1/usage`` ...)."""
    return AuditRecord(
        request_id=request_id,
        key_id=principal.key_id if principal else "",
        tenant=principal.tenant if principal else "",
        client_address=client_address or "",
        endpoint=endpoint,
        model="",
        tier="",
        route_reason="",
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd_micros=0,
        status=status,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        cache="bypass",
        attempts=0,
        pii_classes=[],
        guardrail="not run",
        created_at=time.time(),
        bodies_kept=False,
        degraded="",
    )


def emit(record: AuditRecord) -> None:
    """One JSON line on the audit logger, its fields at the top level."""
    _logger.info(AUDIT_MESSAGE, extra={"audit": record.as_json()})


class AuditTrail:
    """The audit record's emitter and the body archive, as one gateway holds them."""

    def __init__(self, archive: Archive | None, bodies_for_all: bool = False) -> None:
        self.archive = archive
        self.bodies_for_all = bodies_for_all

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditTrail:
        return cls(open_archive(settings), settings.audit.bodies)

    def wants_bodies(self, call: Call) -> bool:
        return self.archive is not None and (
            self.bodies_for_all or call.principal.policy.audit_bodies
        )

    def settled(self, call: Call, usage: UsageRecord, *, answered: bool) -> AuditRecord:
        """Emit the call's record, once; bodies are kept for answered calls of keys that
        ask (``keep`` writes them)."""
        record = call_record(call, usage, answered and self.wants_bodies(call))
        if not call.audited:
            call.audited = True
            emit(record)
        return record

    async def keep(self, call: Call, record: AuditRecord, answer: Json | None) -> None:
        """Write the record, the prompt as the pipeline forwarded it and the answer as
        the caller got it; after the answer is sent. Failures are logged only."""
        if not record.bodies_kept or self.archive is None:
            return
        document = {"record": record.as_json(), "request": call.payload, "answer": answer}
        try:
            await self.archive.put(record.tenant, record.request_id, record.created_at, document)
        except Exception:
            log.exception("could not archive the bodies of request %s", record.request_id)
