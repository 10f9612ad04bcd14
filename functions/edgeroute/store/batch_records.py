"""Files and batches as rows of the jobs table, and the OpenAI objects they show as.

A row keeps the public fields of OpenAI's File or Batch object under their OpenAI
names, beside private ones (the tenant, the key a batch runs as, where its bytes lie,
its lease and checkpoint) that ``public_file``/``public_batch`` leave out. A row is
found only through ``owned``, which answers ``None`` for another tenant's id exactly
as for an unknown one, so an id never tells whether it exists elsewhere.

A cancel request is its own row (``<batch id>#cancel``), never a change to the batch's
row: only the runner holding the lease writes that, so a checkpoint cannot overwrite
the request.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal, Protocol

from edgeroute.store.base import ApiKey
from edgeroute.store.job_listing import LISTED, OWNER, listed_key
from edgeroute.store.keys import is_token
from edgeroute.types import Json

Kind = Literal["file", "batch"]
FILE_PREFIX = "file-"
BATCH_PREFIX = "batch_"
# The routes a batch may name as its endpoint; every line's url must be that route.
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/moderations")
ANY_ENDPOINT = "*"  # a job uploaded under batch/in/ may mix the routes
COMPLETION_WINDOW = "24h"
WINDOW_S = 24 * 3600
TERMINAL = ("completed", "failed", "cancelled", "expired")
# Rows stay readable this long after a batch ends or a file is uploaded, then TTL drops them.
RETENTION_S = 30 * 24 * 3600

_FILE_FIELDS = ("id", "object", "bytes", "created_at", "filename", "purpose", "status")
_BATCH_FIELDS = (
    "id",
    "object",
    "endpoint",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "metadata",
)
_TIMES = {f for f in _BATCH_FIELDS if f.endswith("_at")}


class JobRows(Protocol):
    async def put_job(
        self, job_id: str, data: dict[str, Any], expires_at: float | None = None
    ) -> None: ...
    async def get_job(self, job_id: str) -> dict[str, Any] | None: ...
    async def list_jobs(
        self, owner: str, limit: int, below: str | None
    ) -> list[dict[str, Any]]: ...
    async def claim_job(self, job_id: str, data: dict[str, Any], now: float) -> bool: ...


def new_id(kind: Kind) -> str:
    return (FILE_PREFIX if kind == "file" else BATCH_PREFIX) + os.urandom(12).hex()


def file_name(tenant: str, file_id: str) -> str:
    """Where a file's bytes lie in the file storage."""
    return f"files/{tenant}/{file_id}.jsonl"


def listing(tenant: str, kind: Kind, record_id: str, created_at: float) -> Json:
    """The fields that list a row under its tenant (store/job_listing.py)."""
    return {OWNER: f"{tenant}#{kind}", LISTED: listed_key(created_at, record_id)}


def file_row(
    tenant: str,
    file_id: str,
    *,
    filename: str,
    size: int,
    bucket: str | None,
    name: str,
    purpose: str = "batch",
    status: str = "processed",
) -> Json:
    now = time.time()
    return {
        "job_id": file_id,
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": now,
        "filename": filename,
        "purpose": purpose,
        "status": status,
        "tenant": tenant,
        "bucket": bucket,
        "name": name,
        **listing(tenant, "file", file_id, now),
    }


def batch_row(
    tenant: str,
    batch_id: str,
    *,
    key_id: str,
    endpoint: str,
    input_file_id: str | None,
    source: Json,
    metadata: Json | None = None,
    now: float | None = None,
    window_s: float = WINDOW_S,
) -> Json:
    """A new batch, ``validating``; ``source`` is where its input lies ({bucket, name});
    it expires ``window_s`` after ``now`` (the ``24h`` completion window)."""
    now = now or time.time()
    return {
        "job_id": batch_id,
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "errors": None,
        "input_file_id": input_file_id,
        "completion_window": COMPLETION_WINDOW,
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "expires_at": now + window_s,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": metadata,
        "tenant": tenant,
        "key_id": key_id,
        "source": source,
        "lease_until": 0.0,
        **listing(tenant, "batch", batch_id, now),
    }


def cannot_run_as(principal: ApiKey) -> str | None:
    """Why a batch could not run as ``principal`` (its lines run later, as a key the
    store holds, looked up by id), or ``None`` when it can."""
    if is_token(principal):
        return (
            "this request was authenticated with an OIDC token, and a batch runs after the "
            "request ends, as an API key looked up by its id: a token is neither stored nor "
            "valid that long. Create the batch with an API key of your tenant "
            "('edgeroute keys create --tenant ... --scopes batch,chat')"
        )
    if principal.admin:
        return (
            f"API key {principal.key_id} is an admin key; batch jobs run as tenant keys. "
            "Create the batch with a key that is not an admin key"
        )
    return None


def public_file(row: Json) -> Json:
    shown = {f: row.get(f) for f in _FILE_FIELDS}
    shown["created_at"] = int(row.get("created_at") or 0.0)
    return shown


def public_batch(row: Json, cancel_requested: bool = False) -> Json:
    shown = {f: row.get(f) for f in _BATCH_FIELDS}
    if cancel_requested and shown["status"] not in TERMINAL:
        shown["status"] = "cancelling"
    for field in _TIMES:
        value = shown[field]
        if value is not None:
            shown[field] = int(value)
    return shown


def cancel_marker(batch_id: str) -> str:
    return f"{batch_id}#cancel"


async def cancel_requested(store: JobRows, batch_id: str) -> bool:
    return await store.get_job(cancel_marker(batch_id)) is not None


async def owned(store: JobRows, record_id: str, tenant: str, kind: Kind) -> Json | None:
    """The row of ``record_id`` if it is a ``kind`` of ``tenant``, else ``None``."""
    prefix = FILE_PREFIX if kind == "file" else BATCH_PREFIX
    if not record_id.startswith(prefix) or "#" in record_id:
        return None
    row = await store.get_job(record_id)
    if row is None or row.get("tenant") != tenant or row.get("object") != kind:
        return None
    if kind == "file" and row.get("status") == "deleted":
        return None
    return row


async def page(
    store: JobRows, tenant: str, kind: Kind, limit: int, after: str | None
) -> tuple[list[Json], bool]:
    """Rows newest first after the row ``after`` (an id of the tenant's), and whether
    more follow; an ``after`` that is not the tenant's starts from the newest."""
    below = None
    if after:
        cursor = await owned(store, after, tenant, kind)
        below = str(cursor[LISTED]) if cursor else None
    rows = await store.list_jobs(f"{tenant}#{kind}", limit + 1, below)
    if kind == "file":
        rows = [r for r in rows if r.get("status") != "deleted"]
    return rows[:limit], len(rows) > limit
