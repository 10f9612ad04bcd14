"""Work that follows a sent answer and that no caller waits for: a ledger line, whose
classification for a named model is computed after the answer (pipeline/deferred.py).

Invariant: nothing is dropped. Until ``open`` (and after ``close``) every piece of work
runs inline, awaited by its caller, as it always did: on Lambda (Mangum without a
lifespan, the stream function's uvicorn, batch runs) no work is left behind an invocation
whose sandbox may be frozen or reaped. Once a server off Lambda opens it (``edgeroute
serve``'s lifespan), work runs as tasks of its own, at most
``capacity`` at a time; one that finds them all running runs inline (its caller waits:
backpressure, never a queue without limit), and ``close`` at shutdown awaits every task
still running, so no ledger line is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("edgeroute.pipeline.after_answer")


class AfterAnswer:
    """A bounded set of tasks for work after the answer, flushed on ``close``."""

    def __init__(self) -> None:
        self._capacity = 0  # inline until a lifespan opens it
        self._tasks: set[asyncio.Task[None]] = set()

    def open(self, capacity: int = 64) -> None:
        """Run work in tasks from now on (the lifespan's start: its end calls ``close``)."""
        self._capacity = capacity

    async def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Start ``work``, or, inline or with every slot taken, do it before returning."""
        if len(self._tasks) >= self._capacity:
            await work
            return
        task = asyncio.get_running_loop().create_task(self._logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Back to inline, and wait for every task this loop still runs."""
        self._capacity = 0
        loop = asyncio.get_running_loop()
        while mine := [t for t in self._tasks if t.get_loop() is loop]:
            await asyncio.gather(*mine, return_exceptions=True)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:  # the answer is sent: log, keep serving
            log.exception("work after an answer failed")
