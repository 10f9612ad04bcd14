"""One authenticated request on its way through the pipeline, and the response headers
that describe how it was served.

A ``Call`` is filled in as it moves along (admission, cache status, classification);
its headers are read once the outcome is known.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field

from edgeroute.edge.classifier import Classification
from edgeroute.observe import logs
from edgeroute.pipeline.admit import Admission
from edgeroute.pipeline.cache import CacheMode
from edgeroute.store.base import ApiKey
from edgeroute.types import Json, Kind

log = logging.getLogger("edgeroute.pipeline.call")


def new_request_id() -> str:
    """A request's id, as responses (``x-request-id``), logs and the ledger name it."""
    return "req_" + os.urandom(12).hex()


@dataclass
class Call:
    """One authenticated request on its way through the pipeline."""

    request_id: str
    principal: ApiKey
    kind: Kind
    payload: Json
    cache_mode: CacheMode = "auto"
    started: float = field(default_factory=time.perf_counter)
    # Filled in as the call moves along, for headers and accounting.
    admission: Admission | None = None
    cache_status: str = "bypass"
    max_cost_usd: float | None = None
    classifying: asyncio.Future[Classification] | None = None
    client_address: str | None = None  # the caller's address, as authentication saw it
    pii_classes: tuple[str, ...] = ()  # personal-data classes masked in what was forwarded
    guardrail: str | None = None  # the guardrail's outcome: "passed", "refused: <categories>"
    route_reason: str = ""  # why the model that answered was chosen
    failed_attempts: list[str] = field(default_factory=list)  # "<model>: <code>", in order
    degraded: str = ""  # why the answer came from below the tier asked for; '' if it did not
    audited: bool = False  # its audit record is out (one per request)

    def __post_init__(self) -> None:
        logs.bind(
            request_id=self.request_id,
            tenant=self.principal.tenant,
            key_id=self.principal.key_id,
        )

    @property
    def stream(self) -> bool:
        return bool(self.payload.get("stream"))

    @property
    def want_usage(self) -> bool:
        return bool((self.payload.get("stream_options") or {}).get("include_usage"))


async def classification_headers(call: Call) -> dict[str, str]:
    """x-edgeroute-task and -complexity, once the classification (run alongside the
    upstream call for named models) is done; nothing if it failed."""
    if call.classifying is None:
        return {}
    try:
        c = await call.classifying
    except Exception:  # a missing or broken classifier must not fail the request
        log.exception("classification failed for request %s", call.request_id)
        return {}
    return {"x-edgeroute-task": c.task, "x-edgeroute-complexity": f"{c.complexity:.3f}"}
