"""Answer batch lines through the gateway's pipeline, as HTTP requests are answered.

Every line yields exactly one output line: a request the gateway answered (even with
a 4xx/5xx) becomes a ``response`` line, a line that is not a usable request an
``error`` line saying what is wrong with it and how to fix it. A bug or a store
outage costs its line, never the job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import replace

from edgeroute.batch.jsonl import (
    BatchLine,
    LineError,
    error_line,
    failure_line,
    parse_line,
    response_line,
    validated_payload,
)
from edgeroute.errors import EdgerouteError, InternalError
from edgeroute.pipeline import run as pipeline
from edgeroute.pipeline.call import new_request_id
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.moderate import moderate
from edgeroute.pipeline.scopes import Scope, require
from edgeroute.store.base import ApiKey
from edgeroute.types import Json, Kind

log = logging.getLogger("edgeroute.batch")

Parsed = BatchLine | LineError
Keep = Callable[[Json], Awaitable[None]]


def parse_all(
    lines: list[tuple[int, bytes]], endpoint: str | None, max_line_bytes: int
) -> list[Parsed]:
    """Each line parsed, in order; a repeated ``custom_id``, a line longer than a request
    body may be, and (for a batch with one ``endpoint``) another ``url`` are errors.
    Deterministic, so a resumed job parses its remaining lines exactly as the first run."""
    seen: set[str] = set()
    parsed: list[Parsed] = []
    for number, raw in lines:
        try:
            line = parse_line(number, raw)
        except LineError as exc:
            parsed.append(exc)
            continue
        if len(raw) > max_line_bytes:
            parsed.append(
                LineError(
                    "line_too_large",
                    f"line {number} is {len(raw)} bytes; a request line may be at most "
                    f"{max_line_bytes} bytes (EDGEROUTE_BATCH_MAX_LINE_BYTES). Shorten its input.",
                    line.custom_id,
                )
            )
            continue
        if endpoint is not None and line.kind.path != endpoint:
            parsed.append(
                LineError(
                    "invalid_url",
                    f"line {number}: url {line.kind.path!r} differs from the batch's endpoint "
                    f"{endpoint!r}; a batch runs one endpoint: put this line in its own batch.",
                    line.custom_id,
                )
            )
            continue
        if line.custom_id in seen:
            parsed.append(
                LineError(
                    "duplicate_custom_id",
                    f"line {number}: custom_id {line.custom_id!r} is used by an earlier line",
                    line.custom_id,
                )
            )
            continue
        seen.add(line.custom_id)
        parsed.append(line)
    return parsed


def batch_share(key: ApiKey, percent: int) -> ApiKey:
    """``key`` with ``percent`` of its per-minute and in-flight limits: batch lines count
    in the key's own windows, so they stop at their share and online requests keep the
    rest. Daily tokens and the budget are totals, shared as they are."""

    def part(limit: int | None) -> int | None:
        return None if limit is None else max(1, limit * percent // 100)

    limits = key.limits
    shared = replace(
        limits,
        rpm=part(limits.rpm),
        tpm=part(limits.tpm),
        max_concurrent=part(limits.max_concurrent),
    )
    return replace(key, limits=shared)


def refused_line(item: Parsed, reason: str) -> Json:
    """A line of a job that may not run still gets its line, saying why."""
    return error_line(item.custom_id, "invalid_api_key", reason)


def expired_line(item: Parsed) -> Json:
    """A line not run before its batch's completion window ended (OpenAI's code)."""
    return error_line(
        item.custom_id,
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    )


class LineAnswerer:
    """Lines in flight: at most ``concurrency`` of a job, and at most a model's
    ``batch_concurrency`` (registry) toward that model."""

    def __init__(self, gateway: Gateway, concurrency: int) -> None:
        self.gw = gateway
        self.gate = asyncio.Semaphore(concurrency)
        self.model_gates: dict[str, asyncio.Semaphore] = {}

    def model_gate(self, line: BatchLine) -> AbstractAsyncContextManager[object]:
        name = line.body.get("model")
        spec = self.gw.registry.get(name) if isinstance(name, str) else None
        if spec is None or spec.batch_concurrency is None:
            return nullcontext()
        gate = self.model_gates.get(spec.name)
        if gate is None:
            gate = self.model_gates[spec.name] = asyncio.Semaphore(spec.batch_concurrency)
        return gate

    async def answer_all(
        self, principal: ApiKey, items: list[Parsed], keep: Keep | None = None
    ) -> list[Json]:
        """Each item's output line; ``keep`` (if given) stores a request's line in the
        same step that settles its charge, so one is never done without the other."""

        async def one(item: Parsed) -> Json:
            if isinstance(item, LineError):
                return error_line(item.custom_id, item.code, item.message)
            async with self.model_gate(item), self.gate:  # a waiting line holds no job slot
                return await self.answer(principal, item, keep)

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def answer(self, principal: ApiKey, line: BatchLine, keep: Keep | None = None) -> Json:
        async def settled(answer: Json, settle: Awaitable[None] | None = None) -> Json:
            if settle is not None:
                await settle
            if keep is not None:
                await keep(answer)
            return answer

        async def finish(answer: Json, settle: Awaitable[None] | None = None) -> Json:
            # Shielded: a run cancelled here still records the charge and the answer together.
            return await asyncio.shield(settled(answer, settle))

        request_id = new_request_id()
        call: pipeline.Call | None = None
        self.gw.check_config()  # a long job picks up a changed registry or policy too
        try:
            require(principal, Scope.for_kind(line.kind), f"batch line {line.number}")
            call = pipeline.Call(
                request_id=request_id,
                principal=principal,
                kind=line.kind,
                payload=validated_payload(line),
            )
            if line.kind == Kind.MODERATIONS:  # answered at the edge, settled there
                body = await moderate(self.gw, call)
                return await finish(response_line(line.custom_id, request_id, 200, body))
            result = await pipeline.run(self.gw, call)
        except EdgerouteError as exc:
            exc.log_detail(request_id)
            failed = failure_line(line.custom_id, request_id, exc)
            if call is None:
                return await finish(failed)
            return await finish(failed, pipeline.account_failure(self.gw, call, exc))
        except Exception:  # a bug or a store outage costs this line, not the job
            log.exception("batch line %d (request %s) failed", line.number, request_id)
            error = InternalError.logged(request_id)
            return error_line(line.custom_id, str(error.code), error.message)
        if not isinstance(result, pipeline.Buffered):  # stream flags are stripped above
            return error_line(line.custom_id, "internal_error", "unexpected streamed answer")
        answer = response_line(line.custom_id, request_id, 200, result.body)
        return await finish(answer, pipeline.settle_buffered(self.gw, call, result))
