"""The batch function's events: S3 uploads under ``batch/in/`` start jobs, resume
messages continue them. The job itself runs in batch/jobs.py (checkpointed chunks).

An object created under ``batch/in/`` (``.jsonl``) is one job. Its lines run through
``pipeline.run`` exactly as HTTP requests do (quotas, cache, fallbacks, usage ledger),
a few at a time, and the answers land in ``batch/out/<same name>.jsonl``, one line
per input line in input order. The job is listed in ``GET /v1/batches`` of its tenant.

Whose job it is: the object's user metadata ``x-amz-meta-edgeroute-key-id`` names an
API key id from the store (``edgeroute keys list``); key secrets never sit in files.
The file must lie under ``batch/in/<tenant>/`` for that key's tenant, and admin keys
are refused, so a writer can bill only the tenant whose prefix it may write to:
grant ``s3:PutObject`` on ``batch/in/<tenant>/*`` per tenant.

Redelivery: S3 and Lambda's async retries may deliver an event more than once. The
job id derives from bucket, key and the object's ETag, and one conditional write
claims it in the store: a finished job is not run again, and one still leased by
another invocation is left alone, even when two deliveries arrive together.

Resume messages (SQS records whose body is ``{"batch_id": ...}``) come from the resume
queue: ``POST /v1/batches`` sends one to start a job, a run whose time budget ends
sends one to pass the rest on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.parse
from typing import Any

from edgeroute.batch.jobs import KEY_METADATA, Handover, JobRunner, tenant_of
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import BatchConfig
from edgeroute.store import batch_records as rows
from edgeroute.store.file_storage import FileStorage, S3FileStorage, file_storage
from edgeroute.store.job_listing import LISTED, OWNER
from edgeroute.types import Json

IN_PREFIX = "batch/in/"
OUT_PREFIX = "batch/out/"
SUFFIX = ".jsonl"
RESUME_FIELD = "batch_id"

__all__ = ["BatchRunner", "job_id_for", "output_key", "s3_objects", "tenant_of"]


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


def resumed_jobs(event: dict[str, Any]) -> list[str]:
    """The job ids of the resume queue's messages in ``event``."""
    found = []
    for record in event.get("Records") or []:
        if record.get("eventSource") != "aws:sqs":
            continue
        try:
            body = json.loads(record.get("body") or "")
        except ValueError:
            continue
        if isinstance(body, dict) and isinstance(body.get(RESUME_FIELD), str):
            found.append(body[RESUME_FIELD])
    return found


class BatchRunner:
    def __init__(
        self,
        gateway: Gateway,
        s3: Any,
        config: BatchConfig | None = None,
        *,
        files: FileStorage | None = None,
        handover: Handover | None = None,
    ) -> None:
        """``config`` defaults to the gateway's settings (``EDGEROUTE_BATCH_*``)."""
        self.gw = gateway
        self.s3 = s3
        settings = gateway.settings
        self.config = config or settings.batch
        storage = files or (
            S3FileStorage(s3, settings.batch.bucket)
            if settings.batch.bucket
            else file_storage(settings)
        )
        self.jobs = JobRunner(gateway, storage, s3=s3, config=self.config, handover=handover)

    async def handle_event(
        self, event: dict[str, Any], deadline: float | None = None
    ) -> list[Json]:
        """Run every job the event names; one summary per job, in event order."""
        done = [await self.jobs.run(job_id, deadline) for job_id in resumed_jobs(event)]
        for bucket, key in s3_objects(event):
            done.append(await self.run_object(bucket, key, deadline))
        return done

    async def run_object(self, bucket: str, key: str, deadline: float | None = None) -> Json:
        if not (key.startswith(IN_PREFIX) and key.endswith(SUFFIX)):
            return {"key": key, "skipped": f"not a {IN_PREFIX}*{SUFFIX} object"}
        head = await asyncio.to_thread(self.s3.head_object, Bucket=bucket, Key=key)
        etag = str(head.get("ETag", "")).strip('"')
        job_id = job_id_for(bucket, key, etag)
        tenant = tenant_of(key)
        fresh = rows.batch_row(
            tenant or "",
            job_id,
            key_id=str((head.get("Metadata") or {}).get(KEY_METADATA) or ""),
            endpoint=rows.ANY_ENDPOINT,
            input_file_id=f"s3://{bucket}/{key}",
            source={"bucket": bucket, "name": key},
            window_s=self.config.window_s,
        )
        fresh.update(
            bucket=bucket, input_key=key, output_key=output_key(key), etag=etag, error=None
        )
        if tenant is None:  # not listed: no tenant would see it
            fresh.pop(OWNER)
            fresh.pop(LISTED)
        existing = await self.gw.store.get_job(job_id)
        if existing is not None:  # handed over, leased, finished, or abandoned by a crash
            return await self.jobs.run_row({**fresh, **existing}, deadline)
        if not await self.jobs.claim(fresh):  # atomic: one runner per job
            taken = await self.gw.store.get_job(job_id) or {"job_id": job_id}
            return {**taken, "skipped": "in progress in another invocation"}
        return await self.jobs.proceed(fresh, deadline)
