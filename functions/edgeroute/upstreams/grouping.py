"""Requests to an in-process model grouped into one blocking inference.

The batch runner sets ``GROUP_EDGE`` for its lines: their edge requests (embeddings,
moderations) that arrive within ``GROUP_WAIT_S`` of the first one run as one call of
the model's blocking ``run_all`` on a worker thread (up to ``MAX_GROUP`` of them), so
many small requests cost about what one request of all their inputs costs.

Invariant: each request still gets its own answer (or its own exception) and is
accounted on its own; a model that fails fails every request of its group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import Generic, TypeVar

GROUP_EDGE: ContextVar[bool] = ContextVar("edge_group", default=False)
GROUP_WAIT_S = 0.002  # how long the first request waits for others to join its group
MAX_GROUP = 256

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class Grouper(Generic[Request, Answer]):
    def __init__(self, run_all: Callable[[list[Request]], list[Answer | Exception]]) -> None:
        """``run_all``: each request's answer (or exception), in order (blocking)."""
        self.run_all = run_all
        self.waiting: list[tuple[Request, asyncio.Future[Answer]]] = []

    async def run(self, request: Request) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.waiting.append((request, future))
        if len(self.waiting) == 1:
            asyncio.get_running_loop().create_task(self._run_soon())
        elif len(self.waiting) >= MAX_GROUP:
            await self._run()
        return await future

    async def _run_soon(self) -> None:
        await asyncio.sleep(GROUP_WAIT_S)
        await self._run()

    async def _run(self) -> None:
        group, self.waiting = self.waiting, []
        if not group:
            return
        answers: list[Answer | Exception]
        try:
            answers = await asyncio.to_thread(self.run_all, [r for r, _ in group])
        except Exception as exc:  # the model failed: every request of the group learns it
            answers = [exc] * len(group)
        for (_, future), answer in zip(group, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)
