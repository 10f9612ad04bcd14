"""A sweep that runs now and then every few seconds in the running event loop, for
workers whose jobs the store holds (background Responses, local batch jobs): after a
restart or a crash the first round takes over what a stopped process left leased.

Invariant: a failing round is logged and the next one runs on schedule; only ``stop``
ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("edgeroute.pipeline.periodic")


class Periodic:
    def __init__(self, sweep: Callable[[], Awaitable[Any]], every_s: float, what: str) -> None:
        """``what`` names the sweep in the log line of a round that failed."""
        self.sweep = sweep
        self.every_s = every_s
        self.what = what
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("%s failed", self.what)
            await asyncio.sleep(self.every_s)
