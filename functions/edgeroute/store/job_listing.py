"""Listing and leasing batch records in the jobs table, for both store backends.

Files and batches of the Files and Batches API are rows of the jobs table like the
S3-triggered jobs (key: their id). A row that is listed carries ``_owner``
(``<tenant>#file`` or ``<tenant>#batch``) and ``_listed`` (creation time, zero-padded,
then the id): DynamoDB copies both to top-level attributes that the table's sparse
``by-owner`` index (template.yaml) sorts by, SQLite reads them from the JSON body. A
page is newest first and continues below a cursor, the ``_listed`` of the page's last
row, so a row created meanwhile never shifts a page.

A job is held by one runner at a time through a lease: the stores' ``claim_job`` takes
a row that is new, or active (``ACTIVE``) with its lease run out, never a finished one.
``abandoned_jobs`` finds the batch jobs a claim may take now (a runner that stopped, or
a job created and never started), so a restarted gateway resumes them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

OWNER = "_owner"
LISTED = "_listed"
INDEX = "by-owner"
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
JOB_PREFIX = "batch_"  # batch jobs' ids (API-created and S3-triggered); not their side rows


def listed_key(created_at: float, record_id: str) -> str:
    return f"{created_at:020.6f}#{record_id}"


def index_attributes(data: dict[str, Any]) -> dict[str, Any]:
    """The DynamoDB attributes of a listed row (none for a row that is not listed)."""
    if not data.get(OWNER):
        return {}
    return {"owner": {"S": str(data[OWNER])}, "listed": {"S": str(data[LISTED])}}


def claimable(job: dict[str, Any], now: float) -> bool:
    """Whether ``claim_job`` may take ``job`` over: active, its lease run out."""
    return job.get("status") in ACTIVE and float(job.get("lease_until", 0)) <= now


class SQLiteJobListing:
    """Mixed into SQLiteStore (which provides ``_db`` and ``_lock``)."""

    _db: Any
    _lock: Any

    async def list_jobs(self, owner: str, limit: int, below: str | None) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM jobs WHERE json_extract(body, '$._owner') = ? "
                "AND json_extract(body, '$._listed') < ? "
                "AND (expires_at IS NULL OR expires_at > ?) "
                "ORDER BY json_extract(body, '$._listed') DESC LIMIT ?",
                (owner, below or "~", time.time(), limit),
            ).fetchall()
        return [dict(json.loads(row[0])) for row in rows]

    async def abandoned_jobs(self, now: float) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM jobs WHERE job_id LIKE ? AND job_id NOT LIKE '%#%' "
                # ACTIVE's four statuses (a fifth would fail loudly: a parameter too many)
                "AND json_extract(body, '$.status') IN (?, ?, ?, ?) "
                "AND COALESCE(json_extract(body, '$.lease_until'), 0) <= ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (JOB_PREFIX + "%", *ACTIVE, now, now),
            ).fetchall()
        return [dict(json.loads(row[0])) for row in rows]


class DynamoDBJobListing:
    """Mixed into DynamoDBStore (which provides ``_call``, ``_client`` and ``tables``)."""

    _client: Any
    tables: Any

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError  # DynamoDBStore's

    async def list_jobs(self, owner: str, limit: int, below: str | None) -> list[dict[str, Any]]:
        resp = await self._call(
            self._client.query,
            TableName=self.tables.jobs,
            IndexName=INDEX,
            KeyConditionExpression="#o = :owner AND listed < :below",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":owner": {"S": owner}, ":below": {"S": below or "~"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [dict(json.loads(item["body"]["S"])) for item in resp.get("Items", [])]

    async def abandoned_jobs(self, now: float) -> list[dict[str, Any]]:
        active = {f":s{i}": {"S": status} for i, status in enumerate(ACTIVE)}

        def scan() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            pages = self._client.get_paginator("scan").paginate(
                TableName=self.tables.jobs,
                FilterExpression=f"begins_with(job_id, :p) AND job_status IN ({', '.join(active)}) "
                "AND lease_until <= :now",
                ExpressionAttributeValues={
                    **active,
                    ":p": {"S": JOB_PREFIX},
                    ":now": {"N": repr(float(now))},
                },
                ConsistentRead=True,
            )
            for page in pages:
                found += [dict(json.loads(item["body"]["S"])) for item in page.get("Items", [])]
            return [job for job in found if claimable(job, now)]

        result: list[dict[str, Any]] = await self._call(scan)
        return result
