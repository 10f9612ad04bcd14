"""The memory ceiling: above it, new requests are refused with 503 ``overloaded`` (and
``retry-after``) until the process is below it again; requests already admitted run on.

Resident memory is read from ``/proc/self/statm`` (one small read, Linux only; elsewhere
no ceiling applies) at most once per ``SAMPLE_EVERY_S``, so the check costs a clock
read per request. ``/healthz`` is never refused: it reports the figures.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from edgeroute.errors import Overloaded
from edgeroute.settings import Settings

SAMPLE_EVERY_S = 0.1
# The share of a Lambda function's memory the ceiling defaults to: room for the runtime
# and for the requests in flight when it is reached.
LAMBDA_SHARE = 0.9
_MIB = 1024 * 1024
_STATM = "/proc/self/statm"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def ceiling_mb(settings: Settings, environ: dict[str, str] | None = None) -> int | None:
    """The configured ceiling, else 90% of the Lambda function's memory, else none."""
    if settings.memory_limit_mb is not None:
        return settings.memory_limit_mb
    lambda_mb = (os.environ if environ is None else environ).get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    return int(int(lambda_mb) * LAMBDA_SHARE) if lambda_mb and lambda_mb.isdigit() else None


def resident_bytes() -> int | None:
    """The process's resident memory now; None where /proc is not there."""
    try:
        with open(_STATM, "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class MemoryGauge:
    """Resident memory sampled at most every ``SAMPLE_EVERY_S``, against the ceiling."""

    def __init__(self, limit_mb: int | None) -> None:
        self.limit_bytes = None if limit_mb is None else limit_mb * _MIB
        self._sampled_at = -SAMPLE_EVERY_S
        self._rss: int | None = None

    def rss(self) -> int | None:
        now = time.monotonic()
        if now - self._sampled_at >= SAMPLE_EVERY_S:
            self._rss, self._sampled_at = resident_bytes(), now
        return self._rss

    def over(self) -> bool:
        if self.limit_bytes is None:
            return False
        rss = self.rss()
        return rss is not None and rss > self.limit_bytes

    def report(self) -> dict[str, Any]:
        rss = self.rss()
        return {
            "rss_mb": None if rss is None else round(rss / _MIB, 1),
            "limit_mb": None if self.limit_bytes is None else self.limit_bytes // _MIB,
            "overloaded": self.over(),
        }


def _refusal(gauge: MemoryGauge) -> Overloaded:
    rss = (gauge.rss() or 0) // _MIB
    return Overloaded(
        f"edgeroute is over its memory ceiling ({rss} MiB of {gauge.report()['limit_mb']} "
        "MiB) and takes no new requests until it is below it. Retry in a moment.",
        headers={"Retry-After": "1"},
    )


class MemoryCeiling:
    """ASGI middleware: refuse new requests while ``gauge`` is over its ceiling."""

    def __init__(self, app: ASGIApp, gauge: MemoryGauge) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz" or not self.gauge.over():
            await self.app(scope, receive, send)
            return
        error = _refusal(self.gauge)
        body = json.dumps(error.body()).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
        ]
        await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
