"""The scheduled look for usage anomalies (``store/anomalies.py``): the health probe's
schedule runs it every few minutes, and each run reports what it found as the
``Anomalies`` metric (one observation per kind, 0 when none, so the alarm always has
data) and one WARNING line per anomaly."""

from __future__ import annotations

import logging
import time

from edgeroute.pipeline import metrics
from edgeroute.store.anomalies import KINDS, Anomaly, detect, window_start
from edgeroute.store.base import Store

log = logging.getLogger("edgeroute.pipeline.anomaly_check")

CHECK_EVERY_S = 300  # a 25-hour read of the ledger: not on every probe tick


class AnomalyCheck:
    def __init__(self, store: Store, every_s: float = CHECK_EVERY_S) -> None:
        self.store = store
        self.every_s = every_s
        self._last = float("-inf")

    async def run_if_due(self, now: float | None = None) -> list[Anomaly] | None:
        """Look once ``every_s`` has passed since the last look; ``None`` when not due."""
        now = time.time() if now is None else now
        if now - self._last < self.every_s:
            return None
        self._last = now
        try:
            return await check(self.store, now)
        except Exception:  # the probe's own work must go on; the next look retries
            log.exception("the usage anomaly check failed")
            return None


async def check(store: Store, now: float) -> list[Anomaly]:
    found = detect(await store.query_usage(window_start(now), now), now)
    for kind in KINDS:
        metrics.anomalies(kind, sum(a.kind == kind for a in found))
    for anomaly in found:
        log.warning("usage anomaly: %s %s: %s", anomaly.kind, anomaly.subject, anomaly.detail)
    return found
