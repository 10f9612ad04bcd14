"""Run one batch job in checkpointed chunks, so a job of any size outlives one invocation.

- One run holds a job at a time: its lease (store/job_listing.py), renewed per chunk.
- Lines run ``chunk_lines`` at a time. A chunk's output lines go to a part file named
  by the chunk's first line, then the checkpoint (next line, counts, parts) goes to the
  job's row. A run that dies redoes at most the chunk in flight and rewrites that same
  part, so no line appears twice; duplicate events and retried invocations find the
  job leased or finished and run nothing.
- Before its time budget ends a run stores its checkpoint, releases its lease and hands
  the job on (``handover``: the resume queue on AWS, a new task locally); the next run
  parses the file the same way and resumes at the checkpoint.
- At the end the parts are joined into the output file (answers with status 200) and
  the error file (everything else), and ``input = output + error`` is checked and
  recorded in ``line_check``; an imbalance fails the job rather than passing silently.
- A file that is not JSONL (binary, a JSON array, no JSON object on any line) fails
  the job with the reason in ``errors``; a bad line only costs its own line.
- A job still running at its ``expires_at`` (created + ``EDGEROUTE_BATCH_WINDOW_S``)
  ends ``expired`` at the next chunk: the lines not run yet go to the error file as
  ``batch_expired`` and count as failed, so ``total = completed + failed`` still holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from edgeroute.batch.answer import (
    LineAnswerer,
    Parsed,
    batch_share,
    expired_line,
    parse_all,
    refused_line,
)
from edgeroute.batch.jsonl import encode, not_jsonl
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import BatchConfig
from edgeroute.store import batch_records as rows
from edgeroute.store.base import ApiKey
from edgeroute.store.file_storage import FileStorage, S3FileStorage
from edgeroute.types import Json
from edgeroute.upstreams.grouping import GROUP_EDGE

log = logging.getLogger("edgeroute.batch")

Handover = Callable[[str], Awaitable[None]]
Progress = Callable[[Json], None]
KEY_METADATA = "edgeroute-key-id"  # x-amz-meta-edgeroute-key-id on an S3-triggered file
IN_PREFIX = "batch/in/"


def tenant_of(object_key: str) -> str | None:
    """The tenant a batch file belongs to: ``batch/in/<tenant>/<name>.jsonl``."""
    rest = object_key.removeprefix(IN_PREFIX)
    tenant, sep, _ = rest.partition("/")
    return tenant if sep and tenant else None


def is_ok(line: Json) -> bool:
    response = line.get("response")
    return isinstance(response, dict) and response.get("status_code") == 200


def part_name(job_id: str, start: int) -> str:
    return f"batch/parts/{job_id}/{start:09d}.jsonl"


class JobRunner:
    def __init__(
        self,
        gateway: Gateway,
        files: FileStorage,
        *,
        s3: Any = None,
        config: BatchConfig | None = None,
        handover: Handover | None = None,
        progress: Progress | None = None,
    ) -> None:
        """``files``: where API files lie (an S3-triggered job names its own bucket);
        ``handover``: how the rest of a job is passed on when the time budget ends."""
        self.gw = gateway
        self.store = gateway.store
        self.files = files
        self.s3 = s3
        self.config = config or gateway.settings.batch
        self.handover = handover
        self.progress = progress
        self.answerer = LineAnswerer(gateway, self.config.concurrency)

    def storage_for(self, source: Json) -> FileStorage:
        bucket = source.get("bucket")
        if bucket and bucket != self.files.bucket:
            from edgeroute.store.s3 import make_s3_client

            return S3FileStorage(self.s3 or make_s3_client(), str(bucket))
        return self.files

    async def run(self, job_id: str, deadline: float | None = None) -> Json:
        """Claim the job and run it until it ends or ``deadline`` (``time.monotonic()``)."""
        row = await self.store.get_job(job_id)
        if row is None:
            return {"job_id": job_id, "skipped": "no such job"}
        return await self.run_row(row, deadline)

    async def run_row(self, row: Json, deadline: float | None = None) -> Json:
        if row.get("status") in rows.TERMINAL:
            return {**row, "skipped": "already processed"}
        if not await self.claim(row):
            return {**row, "skipped": "in progress in another invocation"}
        return await self.proceed(row, deadline)

    async def claim(self, row: Json) -> bool:
        now = time.time()
        row["lease_until"] = now + self.config.lease_s
        row["runs"] = int(row.get("runs") or 0) + 1  # how many runs took the job on
        return await self.store.claim_job(str(row["job_id"]), row, now)

    async def proceed(self, row: Json, deadline: float | None = None) -> Json:
        """Run a claimed job; the row as it stands afterwards."""
        try:
            await self._steps(row, deadline)
        except Exception as exc:  # the job fails; the invocation does not
            log.exception("batch job %s failed", row["job_id"])
            await self._end(row, "failed", error=f"{type(exc).__name__}: {exc}")
        return row

    async def release(self, job_ids: list[str]) -> None:
        """Give up the leases of jobs whose runs were stopped here: the next run may
        claim them at once, from their last checkpoint."""
        for job_id in job_ids:
            row = await self.store.get_job(job_id)
            if row is not None and row.get("status") not in rows.TERMINAL:
                row["lease_until"] = 0.0
                await self._save(row)

    async def _save(self, row: Json) -> None:
        ends = row.get("expires_at") or float(row.get("created_at") or time.time()) + rows.WINDOW_S
        expires = float(ends) + rows.RETENTION_S
        await self.store.put_job(str(row["job_id"]), row, expires_at=expires)

    async def _end(self, row: Json, status: str, error: str | None = None) -> None:
        now = time.time()
        row.update(status=status, lease_until=0.0)
        row[f"{status}_at"] = now
        if error:
            row["error"] = error
            row["errors"] = {
                "object": "list",
                "data": [{"code": "job_failed", "message": error, "param": None, "line": None}],
            }
        await self._save(row)

    async def _steps(self, row: Json, deadline: float | None) -> None:
        source: Json = row["source"]
        storage = self.storage_for(source)
        size = await storage.size(str(source["name"]))
        if size is None:
            await self._end(row, "failed", f"the input file {source['name']} no longer exists")
            return
        if size > self.config.max_bytes:
            await self._end(
                row,
                "failed",
                f"{source['name']} is {size} bytes; batch files may be at most "
                f"{self.config.max_bytes} bytes (EDGEROUTE_BATCH_MAX_BYTES). Split it.",
            )
            return
        raw = await storage.get(str(source["name"]))
        reason = not_jsonl(raw)
        if reason:
            await self._end(row, "failed", reason)
            return
        lines = [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
        endpoint = row.get("endpoint")
        parsed = parse_all(
            lines,
            None if endpoint in (None, rows.ANY_ENDPOINT) else str(endpoint),
            self.config.max_line_bytes,
        )
        principal, refusal = await self._principal(row)
        if row.get("status") == "validating":
            row.update(status="in_progress", in_progress_at=time.time())
        cp: Json = row.setdefault("checkpoint", {"next": 0, "parts": [], "ok": 0, "errors": 0})
        row["request_counts"] = _counts(len(parsed), cp)
        await self._save(row)
        ran = False  # every run does at least one chunk, however short its budget
        while cp["next"] < len(parsed):
            if await rows.cancel_requested(self.store, str(row["job_id"])):
                await self._finish(row, storage, parsed, "cancelled")
                return
            if time.time() >= float(row.get("expires_at") or math.inf):
                await self._expire(row, storage, parsed)
                return
            over = deadline is not None and time.monotonic() >= deadline
            if ran and over and self.handover is not None:
                row["lease_until"] = 0.0  # the next run may claim it at once
                await self._save(row)
                await self.handover(str(row["job_id"]))
                return
            # A resumed run's first chunk may have been answered in part by the dead run.
            redo = not ran and int(row.get("runs") or 1) > 1
            await self._chunk(row, storage, parsed, principal, refusal, redo)
            ran = True
        await self._finish(row, storage, parsed, "failed" if refusal else "completed", refusal)

    async def _chunk(
        self,
        row: Json,
        storage: FileStorage,
        parsed: list[Parsed],
        principal: ApiKey | None,
        refusal: str | None,
        redo: bool,
    ) -> None:
        cp: Json = row["checkpoint"]
        start = int(cp["next"])
        chunk = parsed[start : start + self.config.chunk_lines]
        if principal is None:
            results = [refused_line(item, refusal or "no API key") for item in chunk]
        else:
            grouped = GROUP_EDGE.set(self.config.group_embeddings)
            try:
                results = list(
                    await asyncio.gather(
                        *(
                            self._line(row, start + i, item, principal, redo)
                            for i, item in enumerate(chunk)
                        )
                    )
                )
            finally:
                GROUP_EDGE.reset(grouped)
        name = part_name(str(row["job_id"]), start)
        await storage.put(name, encode(results))  # same name on a redo: replaced, not added
        ok = sum(1 for r in results if is_ok(r))
        cp.update(next=start + len(chunk), ok=cp["ok"] + ok, errors=cp["errors"] + len(chunk) - ok)
        if name not in cp["parts"]:
            cp["parts"].append(name)
        row["request_counts"] = _counts(len(parsed), cp)
        row["lease_until"] = time.time() + self.config.lease_s
        await self._save(row)
        if self.progress is not None:
            self.progress(row)

    async def _expire(self, row: Json, storage: FileStorage, parsed: list[Parsed]) -> None:
        """The lines not run yet become ``batch_expired`` error lines; the job ends."""
        cp: Json = row["checkpoint"]
        start = int(cp["next"])
        left = [expired_line(item) for item in parsed[start:]]
        name = part_name(str(row["job_id"]), start)
        await storage.put(name, encode(left))
        cp.update(next=len(parsed), errors=cp["errors"] + len(left))
        if name not in cp["parts"]:
            cp["parts"].append(name)
        row["request_counts"] = _counts(len(parsed), cp)
        await self._finish(row, storage, parsed, "expired")

    async def _line(
        self, row: Json, index: int, item: Parsed, principal: ApiKey, redo: bool
    ) -> Json:
        """One line's answer, kept until the job ends: a chunk run again after a crash
        reuses the answers the dead run already got (and charged) instead of asking again."""
        kept_id = f"{row['job_id']}#line#{index}"
        if redo and (kept := await self.store.get_job(kept_id)) is not None:
            answer: Json = kept["line"]
            return answer

        async def keep(line: Json) -> None:
            kept = {"job_id": kept_id, "line": line}
            await self.store.put_job(kept_id, kept, expires_at=time.time() + rows.WINDOW_S)

        [answer] = await self.answerer.answer_all(principal, [item], keep)
        return answer

    async def _finish(
        self,
        row: Json,
        storage: FileStorage,
        parsed: list[Parsed],
        status: str,
        error: str | None = None,
    ) -> None:
        row.update(status="finalizing", finalizing_at=time.time())
        await self._save(row)
        cp: Json = row["checkpoint"]
        outputs: list[bytes] = []
        failures: list[bytes] = []
        for name in cp["parts"]:
            for line in (await storage.get(name)).splitlines():
                (outputs if is_ok(json.loads(line)) else failures).append(line + b"\n")
        done = int(cp["next"])
        balanced = len(outputs) + len(failures) == done and (
            status != "completed" or done == len(parsed)
        )
        row["line_check"] = {
            "input": len(parsed),
            "run": done,
            "output": len(outputs),
            "error": len(failures),
            "balanced": balanced,
        }
        if not balanced:
            status, error = "failed", f"line check failed: {row['line_check']}"
        if row.get("output_key"):  # an S3-triggered job: one output, every line in order
            combined = [line for name in cp["parts"] for line in await _lines(storage, name)]
            await storage.put(str(row["output_key"]), b"".join(combined))
            row["output_file_id"] = await self._file(row, storage, str(row["output_key"]), combined)
        else:
            row["output_file_id"] = await self._output_file(row, storage, outputs)
            row["error_file_id"] = await self._output_file(row, storage, failures)
        for name in cp["parts"]:
            await storage.delete(name)
        if status == "cancelled":
            marker = await self.store.get_job(rows.cancel_marker(str(row["job_id"])))
            row["cancelling_at"] = (marker or {}).get("cancelling_at")
        await self._end(row, status, error)

    async def _output_file(self, row: Json, storage: FileStorage, lines: list[bytes]) -> str | None:
        if not lines:
            return None
        file_id = rows.new_id("file")
        name = rows.file_name(str(row["tenant"]), file_id)
        await storage.put(name, b"".join(lines))
        return await self._file(row, storage, name, lines, file_id)

    async def _file(
        self,
        row: Json,
        storage: FileStorage,
        name: str,
        lines: list[bytes],
        file_id: str | None = None,
    ) -> str | None:
        """A file row for an output, so ``GET /v1/files/{id}/content`` serves it."""
        tenant = row.get("tenant")
        if not tenant:
            return None
        file_id = file_id or rows.new_id("file")
        record = rows.file_row(
            str(tenant),
            file_id,
            filename=name.rsplit("/", 1)[-1],
            size=sum(len(line) for line in lines),
            bucket=storage.bucket,
            name=name,
            purpose="batch_output",
        )
        await self.store.put_job(file_id, record, expires_at=time.time() + rows.RETENTION_S)
        return file_id

    async def _principal(self, row: Json) -> tuple[ApiKey | None, str | None]:
        key_id = row.get("key_id")
        if not key_id:
            return None, (
                f"the object has no x-amz-meta-{KEY_METADATA} metadata naming the API key "
                "id to run it as (see 'edgeroute keys list')"
            )
        key = await self.store.get_key(str(key_id))
        if key is None:
            return None, f"API key id {key_id!r} (x-amz-meta-{KEY_METADATA}) does not exist"
        if key.revoked:
            return None, f"API key {key_id} was revoked"
        if (reason := rows.cannot_run_as(key)) is not None:
            return None, reason
        object_key = row.get("input_key")
        tenant = tenant_of(str(object_key)) if object_key else row.get("tenant")
        if tenant != key.tenant:
            where = f"{IN_PREFIX}{key.tenant}/, not {object_key}" if object_key else "its own"
            return None, (
                f"API key {key_id} belongs to tenant {key.tenant!r}; its batch files go under "
                f"{where}"
            )
        return batch_share(key, self.config.quota_percent), None


def _counts(total: int, cp: Json) -> Json:
    return {"total": total, "completed": cp["ok"], "failed": cp["errors"]}


async def _lines(storage: FileStorage, name: str) -> list[bytes]:
    return [line + b"\n" for line in (await storage.get(name)).splitlines()]
