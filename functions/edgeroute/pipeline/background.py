"""Background Responses: the asynchronous job behind ``background: true``.

Acceptance routes the request, reserves its quotas (``admit``) and stores the job as
``queued`` with that reservation; the caller gets the id at once. A worker then claims
the job (a compare-and-swap to ``in_progress`` with a lease it renews), runs the chat
call through ``run`` with the reservation from acceptance (no second admission), and
settles it like any call: usage to the ledger, unused tokens and budget given back.

Invariant: the store, not the process, holds every accepted job. A worker that stops
(a restart, a crash) leaves its lease to run out; ``sweep`` (at start, then every
lease) takes over queued jobs and jobs whose lease expired, with their reservation.
A worker looks at its job's record every ``POLL_S`` and stops the call when the record
was cancelled, deleted, or taken over; a finish whose swap fails (a cancel won the
race) is dropped.

Locally the worker is an asyncio task in the gateway process. On AWS
(``EDGEROUTE_RESPONSES_WORKER_FUNCTION`` set) acceptance invokes that Lambda function
asynchronously with the job's id (handlers/background.py), which runs it outside the
HTTP request's 30 s; a scheduled invocation sweeps for jobs whose invocation was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from dataclasses import asdict
from typing import Any

import anyio

from edgeroute.errors import EdgerouteError, InvalidRequest
from edgeroute.pipeline import run as pipeline
from edgeroute.pipeline.admit import Admission, Lease, Limit, admit, reconcile, release
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.periodic import Periodic
from edgeroute.pipeline.responses import (
    Prepared,
    conversation,
    finish,
    keep,
    kept_until,
    response_not_found,
    shown,
    stored,
)
from edgeroute.pipeline.settle import settle, settle_buffered
from edgeroute.store.responses import PENDING, Record, fence
from edgeroute.types import Json, Kind, Usage
from edgeroute.wire.responses import failed, from_chat

log = logging.getLogger("edgeroute.pipeline.background")

POLL_S = 0.5  # how often a running job's record is read for a cancel


@functools.cache
def _lambda_client() -> Any:
    import boto3  # only where a worker function is configured

    return boto3.client("lambda")


def invoke_async(function: str, payload: Json) -> None:
    """Invoke ``function`` asynchronously (InvocationType Event): Lambda queues it and
    retries it twice if it fails."""
    _lambda_client().invoke(
        FunctionName=function, InvocationType="Event", Payload=json.dumps(payload).encode()
    )


def dump_admission(admission: Admission) -> Json:
    return asdict(admission)


def load_admission(data: Json) -> Admission:
    lease = data.get("lease")
    return Admission(
        key_id=data["key_id"],
        limits=[Limit(**item) for item in data.get("limits", [])],
        values=dict(data.get("values", {})),
        reserved_tokens=int(data.get("reserved_tokens", 0)),
        reserved_micros=int(data.get("reserved_micros", 0)),
        now=float(data.get("now", 0.0)),
        lease=Lease(**lease) if lease else None,
    )


async def _stopped(work: asyncio.Task[Json]) -> None:
    work.cancel()
    with contextlib.suppress(BaseException):
        await work


def _claimable(record: Record, now: float) -> bool:
    status = record.get("status")
    return status == "queued" or (
        status == "in_progress" and float(record.get("lease_until", 0)) <= now
    )


async def _give_back(gw: Gateway, record: Record) -> None:
    """The reservation of a job that ends before any worker ran it (cancelled or
    deleted while queued): no worker will settle it, so it goes back here."""
    if record.get("admission"):
        admission = load_admission(record["admission"])
        await reconcile(gw.store, admission, 0, 0)
        await release(gw.store, admission)


async def _cancelled(gw: Gateway, record: Record) -> Record | None:
    """``record`` (queued or running) swapped to cancelled; None if it changed first. A
    queued one's reservation goes back; a running one's worker sees the change and
    settles its call as it stops."""
    done = finish(record, "cancelled", {})
    if not await gw.store.responses.swap(
        record["tenant"], record["id"], record, done, kept_until(gw)
    ):
        return None
    if record["status"] == "queued":
        await _give_back(gw, record)
    return done


async def cancel(gw: Gateway, tenant: str, response_id: str) -> Json:
    """``POST /v1/responses/{id}/cancel``: the Response cancelled, or as it is when it
    had already finished."""
    for _ in range(5):  # a worker's lease renewal may win the race: read again
        record = await stored(gw, tenant, response_id)
        if not record.get("background"):
            raise InvalidRequest(
                "Only background responses can be cancelled; this one was created "
                "without 'background': true.",
                param="response_id",
            )
        if record["status"] not in PENDING:
            return shown(record)
        done = await _cancelled(gw, record)
        if done is not None:
            return shown(done)
    raise EdgerouteError("The response changed while cancelling it; retry the cancel.")


async def delete(gw: Gateway, tenant: str, response_id: str) -> None:
    """``DELETE /v1/responses/{id}``: a queued job is cancelled first (its reservation
    given back); a running one's worker sees the record gone and stops."""
    record = await stored(gw, tenant, response_id)
    if record["status"] == "queued":
        await _cancelled(gw, record)
    if not await gw.store.responses.delete(tenant, response_id):
        raise response_not_found(response_id)


class BackgroundResponses:
    """The background workers of one gateway process."""

    def __init__(self, gw: Gateway, holder: str | None = None, *, here: bool = False) -> None:
        """``here``: run every job in this process, even where a worker function is
        configured (that function's own handler)."""
        self.gw = gw
        self.remote = "" if here else gw.settings.responses.worker_function
        self.holder = holder or os.urandom(8).hex()
        self._slots = asyncio.Semaphore(gw.settings.responses.workers)
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        every_s = min(self.lease_s, 30.0)
        self._sweeper = Periodic(self.sweep, every_s, "looking for background responses to run")

    @property
    def lease_s(self) -> float:
        return self.gw.settings.responses.lease_s

    async def accept(self, call: Call, prepared: Prepared) -> Json:
        """Route, reserve the quotas, store the job as queued, start it; the queued
        Response. A refusal (429, 402, 404 ...) is answered now, as for any call."""
        decided = await pipeline.route(self.gw, call)
        model = decided.targets[0]
        call.admission = await admit(
            self.gw.store, call.principal, Kind.CHAT, model, call.payload, decided.reserve_tokens
        )
        response = prepared.shell("queued")
        record = prepared.record(call, response)
        record["admission"] = dump_admission(call.admission)
        try:
            await keep(self.gw, record)
        except BaseException:
            await settle(self.gw, call, model, Usage(), 500, 0)
            raise
        await self.dispatch(call.principal.tenant, prepared.id)
        return response

    async def dispatch(self, tenant: str, response_id: str) -> None:
        """Start the job: here, or by an asynchronous invocation of the worker function.
        A failed invocation leaves the job queued for the worker's next sweep."""
        if not self.remote:
            self.submit(tenant, response_id)
            return
        job = {"tenant": tenant, "id": response_id}
        try:
            await asyncio.to_thread(invoke_async, self.remote, job)
        except Exception:
            log.exception("invoking %s for response %s failed", self.remote, response_id)

    async def run_here(self, tenant: str | None = None, response_id: str | None = None) -> int:
        """Run one job (or, with no id, every job a sweep finds) to its end in this
        process; how many were started. The worker function's handler."""
        if tenant is not None and response_id is not None:
            self.submit(tenant, response_id)
            found = 1
        else:
            found = await self.sweep()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        return found

    def submit(self, tenant: str, response_id: str) -> None:
        key = (tenant, response_id)
        if key in self._running:
            return
        task = asyncio.get_running_loop().create_task(self._run(tenant, response_id))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    def start(self) -> None:
        """Take over what the store holds (now, then every lease)."""
        self._sweeper.start()

    async def stop(self) -> None:
        """Stop every worker; their leases run out and another process takes over."""
        await self._sweeper.stop()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def sweep(self) -> int:
        """Submit every job this process may claim now; how many."""
        now = time.time()
        found = 0
        for record in await self.gw.store.responses.pending():
            if _claimable(record, now) and (record["tenant"], record["id"]) not in self._running:
                self.submit(record["tenant"], record["id"])
                found += 1
        return found

    async def _run(self, tenant: str, response_id: str) -> None:
        try:
            async with self._slots:
                await self._claim_and_run(tenant, response_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background response %s failed; its lease will run out", response_id)

    async def _claim_and_run(self, tenant: str, response_id: str) -> None:
        store = self.gw.store.responses
        record = await store.get(tenant, response_id)
        now = time.time()
        if record is None or not _claimable(record, now):
            return
        current = dict(
            record,
            status="in_progress",
            holder=self.holder,
            lease_until=now + self.lease_s,
            response=dict(record["response"], status="in_progress"),
        )
        if not await store.swap(tenant, response_id, record, current, kept_until(self.gw)):
            return  # another worker claimed it first
        work = asyncio.get_running_loop().create_task(self._execute(current))
        try:
            current = await self._watch(tenant, response_id, current, work)
        except asyncio.CancelledError:
            # The process is stopping: the call settled as it stopped (its reservation
            # given back), so the job goes back to the queue to be admitted afresh.
            with anyio.CancelScope(shield=True):
                await _stopped(work)
                again = dict(finish(current, "queued", {}), admission=None)
                await store.swap(tenant, response_id, current, again, kept_until(self.gw))
            raise
        if not work.done():
            return  # cancelled, deleted or taken over: the call settled as it stopped
        response = work.result()
        done = finish(current, response["status"], {})
        done["response"] = dict(response)
        done["messages"] = conversation(current["messages"], response)
        for settled in ("chat", "admission"):  # what only running it needed
            done.pop(settled, None)
        if not await store.swap(tenant, response_id, current, done, kept_until(self.gw)):
            log.info("background response %s changed while running; result dropped", response_id)

    async def _watch(
        self, tenant: str, response_id: str, current: Record, work: asyncio.Task[Json]
    ) -> Record:
        """Wait for ``work``, renewing the lease; stop it when the record says so (a
        cancel, a delete, another holder). The record as last written."""
        store = self.gw.store.responses
        while not work.done():
            await asyncio.wait({work}, timeout=POLL_S)
            if work.done():
                break
            latest = await store.get(tenant, response_id)
            if latest is None or fence(latest) != fence(current):
                await _stopped(work)
                break
            if current["lease_until"] - time.time() < self.lease_s / 2:
                renewed = dict(latest, lease_until=time.time() + self.lease_s)
                if await store.swap(tenant, response_id, latest, renewed, kept_until(self.gw)):
                    current = renewed
        return current

    def cancel_local(self, tenant: str, response_id: str) -> None:
        """Stop this process's run of a job now (its record was already cancelled or
        deleted), rather than at the worker's next look: the call settles as it stops,
        and the requeue that a stop attempts finds the record changed and writes nothing."""
        task = self._running.get((tenant, response_id))
        if task is not None:
            task.cancel()

    async def _execute(self, record: Record) -> Json:
        """Run the job's chat call to its end; the finished (or failed) Response."""
        gw = self.gw
        queued: Json = record["response"]
        admission = load_admission(record["admission"]) if record.get("admission") else None
        principal = await gw.store.get_key(record["key_id"])
        if principal is None or principal.revoked or principal.expired(time.time()):
            if admission is not None:  # nobody to bill: give the reservation back
                await reconcile(gw.store, admission, 0, 0)
                await release(gw.store, admission)
            return failed(
                queued, "invalid_api_key", "The key that created this response was revoked."
            )
        call = Call(
            request_id=record["request_id"],
            principal=principal,
            kind=Kind.CHAT,
            payload=dict(record["chat"]),
        )
        call.admission = admission
        try:
            result = await pipeline.run(gw, call)
        except EdgerouteError as exc:
            if not call.audited:  # refused before the pipeline settled it
                await settle(gw, call, None, Usage(), exc.status_code, 0)
            exc.log_detail(call.request_id)
            return failed(queued, str(exc.code or exc.error_type), exc.message)
        assert isinstance(result, pipeline.Buffered)  # the stored payload never streams
        await settle_buffered(gw, call, result)
        return from_chat(result.body, queued)
