"""Run OpenAI batch-format JSONL files from S3 through the gateway's pipeline.

An object created under ``batch/in/`` (``.jsonl``) is one job. Its lines run through
``pipeline.run`` exactly as HTTP requests do (quotas, cache, fallbacks, usage ledger),
a few at a time, and the answers land in ``batch/out/<same name>.jsonl``, one line
per input line in input order.

Whose job it is: the object's user metadata ``x-amz-meta-edgeroute-key-id`` names an
API key id from the store (``edgeroute keys list``); key secrets never sit in files.
The file must lie under ``batch/in/<tenant>/`` for that key's tenant, and admin keys
are refused, so a writer can bill only the tenant whose prefix it may write to:
grant ``s3:PutObject`` on ``batch/in/<tenant>/*`` per tenant.

Redelivery: S3 and Lambda's async retries may deliver an event more than once. The
job id derives from bucket, key and the object's ETag, and one conditional write
claims it in the store: a finished job is not run again, and one still leased by
another invocation is left alone, even when two deliveries arrive together. Bad
lines become error lines; no line is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import urllib.parse
from typing import Any

from edgeroute.batch.jsonl import (
    BatchLine,
    LineError,
    encode,
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
from edgeroute.pipeline.scopes import Scope, require
from edgeroute.settings import BatchConfig
from edgeroute.store.base import ApiKey
from edgeroute.types import Json

log = logging.getLogger("edgeroute.batch")

IN_PREFIX = "batch/in/"
OUT_PREFIX = "batch/out/"
SUFFIX = ".jsonl"
KEY_METADATA = "edgeroute-key-id"  # x-amz-meta-edgeroute-key-id on the object
# Finished jobs stay readable (and deduplicated) this long, then the table's TTL drops them.
JOB_RETENTION_S = 30 * 24 * 3600


def tenant_of(object_key: str) -> str | None:
    """The tenant a batch file belongs to: ``batch/in/<tenant>/<name>.jsonl``."""
    rest = object_key.removeprefix(IN_PREFIX)
    tenant, sep, _ = rest.partition("/")
    return tenant if sep and tenant else None


def output_key(input_key: str) -> str:
    """``batch/in/team/a.jsonl`` -> ``batch/out/team/a.jsonl``."""
    return OUT_PREFIX + input_key.removeprefix(IN_PREFIX)


def job_id_for(bucket: str, key: str, etag: str) -> str:
    digest = hashlib.sha256(f"{bucket}\n{key}\n{etag}".encode()).hexdigest()
    return "batch_" + digest[:24]


def s3_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) of every object-created record, keys URL-decoded as S3 sends them
    encoded. S3's ``s3:TestEvent`` (sent when a notification is configured) and other
    event types are skipped."""
    if event.get("Event") == "s3:TestEvent":
        return []
    found = []
    for record in event.get("Records") or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = (s3.get("object") or {}).get("key")
        if bucket and key:
            found.append((str(bucket), urllib.parse.unquote_plus(str(key))))
    return found


class BatchRunner:
    def __init__(self, gateway: Gateway, s3: Any, config: BatchConfig | None = None) -> None:
        """``config`` defaults to the gateway's settings (``EDGEROUTE_BATCH_*``)."""
        self.gw = gateway
        self.s3 = s3
        self.config = config or gateway.settings.batch

    async def handle_event(self, event: dict[str, Any]) -> list[Json]:
        """Run every job the event names; one summary per object, in event order."""
        return [await self.run_object(bucket, key) for bucket, key in s3_objects(event)]

    async def run_object(self, bucket: str, key: str) -> Json:
        if not (key.startswith(IN_PREFIX) and key.endswith(SUFFIX)):
            return {"key": key, "skipped": f"not a {IN_PREFIX}*{SUFFIX} object"}
        head = await asyncio.to_thread(self.s3.head_object, Bucket=bucket, Key=key)
        etag = str(head.get("ETag", "")).strip('"')
        job_id = job_id_for(bucket, key, etag)
        now = time.time()
        job: Json = {
            "job_id": job_id,
            "status": "in_progress",
            "bucket": bucket,
            "input_key": key,
            "output_key": output_key(key),
            "etag": etag,
            "key_id": (head.get("Metadata") or {}).get(KEY_METADATA),
            "created_at": now,
            "lease_until": now + self.config.lease_s,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "error": None,
        }
        if not await self.gw.store.claim_job(job_id, job, now):  # atomic: one runner per job
            existing = await self.gw.store.get_job(job_id) or {"job_id": job_id}
            if existing.get("status") in ("completed", "failed"):
                return {**existing, "skipped": "already processed"}
            return {**existing, "skipped": "in progress in another invocation"}
        try:
            await self._run(job, head)
        except Exception as exc:  # the job fails; the invocation does not
            log.exception("batch job %s failed", job_id)
            job.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        job["completed_at"] = time.time()
        await self.gw.store.put_job(job_id, job, expires_at=job["completed_at"] + JOB_RETENTION_S)
        return job

    async def _run(self, job: Json, head: dict[str, Any]) -> None:
        size = int(head.get("ContentLength", 0))
        if size > self.config.max_bytes:
            job.update(
                status="failed",
                error=f"{job['input_key']} is {size} bytes; batch files may be at most "
                f"{self.config.max_bytes} bytes (EDGEROUTE_BATCH_MAX_BYTES). Split it.",
            )
            return
        obj = await asyncio.to_thread(
            self.s3.get_object, Bucket=job["bucket"], Key=job["input_key"], IfMatch=head["ETag"]
        )
        raw: bytes = await asyncio.to_thread(obj["Body"].read)
        lines = [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
        principal, refusal = await self._principal(job.get("key_id"), job["input_key"])
        if principal is None:
            results = [_unauthorized(n, line, refusal) for n, line in lines]
        else:
            results = await self._answer_all(principal, lines)
        failed = sum(1 for r in results if r["error"] or r["response"]["status_code"] != 200)
        job["request_counts"] = {
            "total": len(results),
            "completed": len(results) - failed,
            "failed": failed,
        }
        await asyncio.to_thread(
            self.s3.put_object,
            Bucket=job["bucket"],
            Key=job["output_key"],
            Body=encode(results),
            ContentType="application/jsonl",
            Metadata={"edgeroute-job-id": job["job_id"]},
        )
        job.update(status="completed" if principal else "failed", error=job["error"] or refusal)

    async def _principal(
        self, key_id: str | None, object_key: str
    ) -> tuple[ApiKey | None, str | None]:
        if not key_id:
            return None, (
                f"the object has no x-amz-meta-{KEY_METADATA} metadata naming the API key "
                "id to run it as (see 'edgeroute keys list')"
            )
        key = await self.gw.store.get_key(key_id)
        if key is None:
            return None, f"API key id {key_id!r} (x-amz-meta-{KEY_METADATA}) does not exist"
        if key.revoked:
            return None, f"API key {key_id} was revoked"
        if key.admin:
            return None, f"API key {key_id} is an admin key; batch jobs run as tenant keys"
        tenant = tenant_of(object_key)
        if tenant != key.tenant:
            return None, (
                f"API key {key_id} belongs to tenant {key.tenant!r}; its batch files go under "
                f"{IN_PREFIX}{key.tenant}/, not {object_key}"
            )
        return key, None

    async def _answer_all(self, principal: ApiKey, lines: list[tuple[int, bytes]]) -> list[Json]:
        gate = asyncio.Semaphore(self.config.concurrency)
        seen: set[str] = set()
        parsed: list[BatchLine | LineError] = []
        for number, raw in lines:
            try:
                line = parse_line(number, raw)
            except LineError as exc:
                parsed.append(exc)
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

        async def one(item: BatchLine | LineError) -> Json:
            if isinstance(item, LineError):
                return error_line(item.custom_id, item.code, item.message)
            async with gate:
                return await self._answer(principal, item)

        return list(await asyncio.gather(*(one(item) for item in parsed)))

    async def _answer(self, principal: ApiKey, line: BatchLine) -> Json:
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
            result = await pipeline.run(self.gw, call)
        except EdgerouteError as exc:
            exc.log_detail(request_id)
            if call is not None:
                await pipeline.account_failure(self.gw, call, exc)
            return failure_line(line.custom_id, request_id, exc)
        except Exception:  # a bug or a store outage costs this line, not the job
            log.exception("batch line %d (request %s) failed", line.number, request_id)
            error = InternalError.logged(request_id)
            return error_line(line.custom_id, str(error.code), error.message)
        if not isinstance(result, pipeline.Buffered):  # stream flags are stripped above
            return error_line(line.custom_id, "internal_error", "unexpected streamed answer")
        await pipeline.settle_buffered(self.gw, call, result)
        return response_line(line.custom_id, request_id, 200, result.body)


def _unauthorized(number: int, raw: bytes, reason: str | None) -> Json:
    """Every line of a job that may not run still gets its line, saying why."""
    try:
        custom_id: str | None = parse_line(number, raw).custom_id
    except LineError as exc:
        custom_id = exc.custom_id
    return error_line(custom_id, "invalid_api_key", reason or "no API key for this job")
