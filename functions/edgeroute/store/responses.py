"""Stored Responses (OpenAI's Responses API) and their background jobs, per tenant.

They live in the jobs table (the batch runner's) under keys ``response#<tenant>#<id>``,
so another tenant's id is simply absent, and no new table is needed. A record is one
JSON body with a ``status`` (queued, in_progress, completed, failed, cancelled,
incomplete), and, while a worker runs it, ``holder`` and ``lease_until``.

Invariant: every change after creation is a compare-and-swap (``swap``) on the
record's status, holder and lease as last read, so a cancel, a worker's finish and a
takeover of an abandoned job can never overwrite one another. Both backends pass
tests/contract/test_responses_store.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from edgeroute.store.dynamodb_leases import ttl_attribute

PREFIX = "response#"
PENDING = ("queued", "in_progress")

Record = dict[str, Any]


def job_key(tenant: str, response_id: str) -> str:
    return f"{PREFIX}{tenant}#{response_id}"


def fence(record: Record) -> tuple[str, str, float]:
    """What a swap compares: status, holder and lease."""
    return (
        str(record.get("status", "")),
        str(record.get("holder", "")),
        float(record.get("lease_until", 0)),
    )


class ResponseStore(Protocol):
    async def put(
        self, tenant: str, response_id: str, record: Record, expires_at: float | None
    ) -> None:
        """Create or replace the record."""

    async def get(self, tenant: str, response_id: str) -> Record | None:
        """The record, or ``None`` when absent, expired, or another tenant's."""

    async def swap(
        self,
        tenant: str,
        response_id: str,
        expected: Record,
        new: Record,
        expires_at: float | None,
    ) -> bool:
        """Replace the record with ``new`` if its status, holder and lease are still
        those of ``expected``; False (nothing written) otherwise."""

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Delete the record; False when there was none."""

    async def pending(self) -> list[Record]:
        """Every record queued or in progress, any tenant (a restarted worker's to-do)."""


class SQLiteResponses:
    """The records in the SQLite store's jobs table, on its connection and lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    async def put(
        self, tenant: str, response_id: str, record: Record, expires_at: float | None
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (job_id, body, expires_at) VALUES (?, ?, ?)",
                (job_key(tenant, response_id), json.dumps(record), expires_at),
            )

    def _read(self, key: str) -> Record | None:
        row = self._db.execute(
            "SELECT body FROM jobs WHERE job_id = ? AND (expires_at IS NULL OR expires_at > ?)",
            (key, time.time()),
        ).fetchone()
        return dict(json.loads(row[0])) if row else None

    async def get(self, tenant: str, response_id: str) -> Record | None:
        with self._lock:
            return self._read(job_key(tenant, response_id))

    async def swap(
        self,
        tenant: str,
        response_id: str,
        expected: Record,
        new: Record,
        expires_at: float | None,
    ) -> bool:
        key = job_key(tenant, response_id)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # other processes on the file wait here
            try:
                current = self._read(key)
                if current is None or fence(current) != fence(expected):
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute(
                    "UPDATE jobs SET body = ?, expires_at = ? WHERE job_id = ?",
                    (json.dumps(new), expires_at, key),
                )
                self._db.execute("COMMIT")
                return True
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    async def delete(self, tenant: str, response_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM jobs WHERE job_id = ?", (job_key(tenant, response_id),)
            )
        return cursor.rowcount > 0

    async def pending(self) -> list[Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM jobs WHERE job_id LIKE ? "
                "AND json_extract(body, '$.status') IN (?, ?) "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (PREFIX + "%", *PENDING, time.time()),
            ).fetchall()
        return [dict(json.loads(row[0])) for row in rows]


Call = Callable[..., Awaitable[Any]]


def _item(key: str, record: Record, expires_at: float | None) -> dict[str, Any]:
    status, holder, lease = fence(record)
    item: dict[str, Any] = {
        "job_id": {"S": key},
        "body": {"S": json.dumps(record)},
        "job_status": {"S": status},
        "holder": {"S": holder},
        "lease_until": {"N": repr(lease)},
    }
    if expires_at is not None:
        item["expires_at"] = ttl_attribute(expires_at)
    return item


def _live(item: dict[str, Any] | None) -> Record | None:
    if not item:
        return None
    expires = item.get("expires_at")
    if expires is not None and float(expires["N"]) <= time.time():
        return None  # DynamoDB deletes expired items up to days late
    return dict(json.loads(item["body"]["S"]))


class DynamoResponses:
    """The records in the DynamoDB jobs table; ``call`` runs boto3 off the event loop."""

    def __init__(self, client: Any, table: str, call: Call) -> None:
        self._client = client
        self._table = table
        self._call = call

    async def put(
        self, tenant: str, response_id: str, record: Record, expires_at: float | None
    ) -> None:
        item = _item(job_key(tenant, response_id), record, expires_at)
        await self._call(self._client.put_item, TableName=self._table, Item=item)

    async def get(self, tenant: str, response_id: str) -> Record | None:
        resp = await self._call(
            self._client.get_item,
            TableName=self._table,
            Key={"job_id": {"S": job_key(tenant, response_id)}},
            ConsistentRead=True,  # a poll right after a change sees it
        )
        return _live(resp.get("Item"))

    async def swap(
        self,
        tenant: str,
        response_id: str,
        expected: Record,
        new: Record,
        expires_at: float | None,
    ) -> bool:
        status, holder, lease = fence(expected)
        try:
            await self._call(
                self._client.put_item,
                TableName=self._table,
                Item=_item(job_key(tenant, response_id), new, expires_at),
                ConditionExpression="job_status = :s AND holder = :h AND lease_until = :l",
                ExpressionAttributeValues={
                    ":s": {"S": status},
                    ":h": {"S": holder},
                    ":l": {"N": repr(lease)},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    async def delete(self, tenant: str, response_id: str) -> bool:
        resp = await self._call(
            self._client.delete_item,
            TableName=self._table,
            Key={"job_id": {"S": job_key(tenant, response_id)}},
            ReturnValues="ALL_OLD",
        )
        return _live(resp.get("Attributes")) is not None

    async def pending(self) -> list[Record]:
        def scan() -> list[Record]:
            found: list[Record] = []
            pages = self._client.get_paginator("scan").paginate(
                TableName=self._table,
                FilterExpression="begins_with(job_id, :p) AND job_status IN (:q, :r)",
                ExpressionAttributeValues={
                    ":p": {"S": PREFIX},
                    ":q": {"S": PENDING[0]},
                    ":r": {"S": PENDING[1]},
                },
                ConsistentRead=True,
            )
            for page in pages:
                found += [r for r in map(_live, page.get("Items", [])) if r is not None]
            return found

        result: list[Record] = await self._call(scan)
        return result
