"""Classification of named-model requests after their answer is sent: bounded and
sheddable, never on a request's critical path.

Invariant: at most ``capacity`` classifications wait; one runs at a time, on a worker
thread; together they use at most ``share`` of wall-clock time (a bucket of seconds that
refills at ``share`` per second, up to ``burst_s``). A request that finds the queue full
or the bucket empty is shed at once: its future resolves to None and ``shed`` counts it.
Nothing waits without limit, and ``close`` resolves whatever still waits to None.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from edgeroute.edge.classifier import Classification
from edgeroute.pipeline import metrics
from edgeroute.types import Json

log = logging.getLogger("edgeroute.pipeline.deferred")

Classifier = Callable[[Json], Classification]
Pending = tuple[Json, "asyncio.Future[Classification | None]"]


class DeferredClassifier:
    """A bounded queue of classifications for the ledger, worked off one at a time."""

    def __init__(
        self,
        classify: Classifier,
        *,
        capacity: int = 16,
        share: float = 0.1,
        burst_s: float = 0.1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._classify = classify
        self._capacity = capacity
        self._share = share
        self._burst_s = burst_s
        self._clock = clock
        self._credit_s = burst_s
        self._refilled = clock()
        self._pending: deque[Pending] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self.shed = 0  # requests whose classification was dropped
        self.classified = 0

    def submit(self, payload: Json) -> asyncio.Future[Classification | None]:
        """The payload's classification, later; None at once when it is shed."""
        future: asyncio.Future[Classification | None] = asyncio.get_running_loop().create_future()
        if self._closed or len(self._pending) >= self._capacity or not self._has_credit():
            self._drop(future)
            return future
        self._pending.append((payload, future))
        loop = asyncio.get_running_loop()
        # One worker per loop: a test's loop may end with its worker never finished.
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._worker = loop.create_task(self._work())
        return future

    async def close(self) -> None:
        """Shed what still waits (its callers go on without a classification) and let the
        one running finish."""
        self._closed = True
        while self._pending:
            self._drop(self._pending.popleft()[1])
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)

    def _has_credit(self) -> bool:
        now = self._clock()
        elapsed, self._refilled = now - self._refilled, now
        self._credit_s = min(self._burst_s, self._credit_s + elapsed * self._share)
        return self._credit_s > 0

    def _drop(self, future: asyncio.Future[Classification | None]) -> None:
        self.shed += 1
        metrics.classification_shed()
        if not future.done():
            future.set_result(None)

    async def _work(self) -> None:
        while self._pending:
            payload, future = self._pending.popleft()
            if future.done():  # its caller gave up waiting
                continue
            if not self._has_credit():
                self._drop(future)
                continue
            started = self._clock()
            try:
                result: Classification | None = await asyncio.to_thread(self._classify, payload)
                self.classified += 1
            except Exception:  # a missing or broken classifier costs only the ledger fields
                log.exception("deferred classification failed")
                result = None
            self._credit_s -= self._clock() - started
            if not future.done():
                future.set_result(result)
