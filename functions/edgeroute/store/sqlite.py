"""The embedded store: one SQLite file, used by ``edgeroute serve`` and on laptops.
The file and its -wal and -shm side files are readable by their owner only (``files``).

Queries take tens of microseconds, so they run inline on the event loop; a lock
keeps the one connection safe when the CLI or threads share it. Counter updates
use ``BEGIN IMMEDIATE`` so they stay atomic across processes sharing the file too.
Because the loop waits while SQLite waits for another process's lock, that wait is
short (``BUSY_TIMEOUT_MS``): past it a write fails fast, usage records go to the spool
and admission answers 503, instead of the whole gateway stalling (5 s a write once).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeroute.store.base import (
    ApiKey,
    CounterResult,
    UsageRecord,
    decode_cache_value,
    encode_cache_value,
    key_from_json,
    key_to_json,
    merge_health,
    usage_from_json,
    usage_to_json,
)
from edgeroute.store.files import create_private, narrow
from edgeroute.store.job_listing import SQLiteJobListing, claimable
from edgeroute.store.responses import SQLiteResponses
from edgeroute.store.usage import NO_MODEL, GroupBy, UsageTotals

# What /v1/usage groups by, as SQL over the usage table (fixed text, never user input).
_GROUP_SQL: dict[str, str] = {
    "model": f"COALESCE(NULLIF(json_extract(body, '$.model'), ''), '{NO_MODEL}')",
    "day": "date(created_at, 'unixepoch')",
    "tenant": "tenant",
    "replica": f"COALESCE(NULLIF(json_extract(body, '$.replica'), ''), '{NO_MODEL}')",
    "version": f"COALESCE(NULLIF(json_extract(body, '$.version'), ''), '{NO_MODEL}')",
    "key": "json_extract(body, '$.key_id')",
}
# Sums per group, as UsageTotals adds them: a failed attempt's line (its request id holds
# '#') counts only as a failed attempt.
_TOTALS_SQL = """
SELECT g, SUM(NOT f), SUM(f),
    SUM(NOT f AND json_extract(body, '$.status') >= 400),
    SUM(NOT f AND json_extract(body, '$.cache_hit')),
    SUM(CASE WHEN f THEN 0 ELSE json_extract(body, '$.prompt_tokens') END),
    SUM(CASE WHEN f THEN 0 ELSE json_extract(body, '$.completion_tokens') END),
    SUM(CASE WHEN f THEN 0 ELSE json_extract(body, '$.cost_usd_micros') END),
    TOTAL(CASE WHEN f THEN 0 ELSE json_extract(body, '$.latency_ms') END)
FROM (SELECT {group} AS g, instr(request_id, '#') > 0 AS f, body FROM usage
      WHERE created_at >= ? AND created_at < ? {tenant})
GROUP BY g ORDER BY g
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    request_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    created_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_by_time ON usage (created_at);
CREATE INDEX IF NOT EXISTS usage_by_tenant ON usage (tenant, created_at);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    value INTEGER NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (name, window_start)
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (name, holder)
);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    compressed INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS health (
    endpoint TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (endpoint, kind)
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    expires_at REAL
);
"""

# SQLite has no TTL: every this many expiring writes, delete what has expired.
_PURGE_EVERY = 1000


BUSY_TIMEOUT_MS = 1000  # a CLI write holds the lock for well under this, even on a busy box


class SQLiteStore(SQLiteJobListing):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        on_disk = self.path != ":memory:"
        if on_disk:
            # SQLite gives the -wal and -shm files the database file's mode: 0600 too.
            create_private(Path(self.path))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        if on_disk:  # side files an older version left readable by others
            for side in ("-wal", "-shm"):
                narrow(Path(self.path + side))
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._db.executescript(_SCHEMA)
        self._writes = 0
        self.responses = SQLiteResponses(self._db, self._lock)

    # -- keys ------------------------------------------------------------------
    async def put_key(self, key: ApiKey) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO api_keys (key_id, body) VALUES (?, ?)",
                (key.key_id, key_to_json(key)),
            )

    async def get_key(self, key_id: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return key_from_json(row[0]) if row else None

    async def list_keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM api_keys").fetchall()
        return sorted((key_from_json(r[0]) for r in rows), key=lambda k: k.created_at)

    # -- usage -----------------------------------------------------------------
    async def record_usage(self, record: UsageRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO usage (request_id, tenant, created_at, body) VALUES (?, ?, ?, ?)",
                (record.request_id, record.tenant, record.created_at, usage_to_json(record)),
            )

    async def query_usage(
        self, start: float, end: float, tenant: str | None = None
    ) -> list[UsageRecord]:
        sql = "SELECT body FROM usage WHERE created_at >= ? AND created_at < ?"
        args: tuple[object, ...] = (start, end)
        if tenant is not None:
            sql += " AND tenant = ?"
            args = (*args, tenant)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at, request_id", args).fetchall()
        return [usage_from_json(r[0]) for r in rows]

    async def summarize_usage(
        self, start: float, end: float, tenant: str | None, group_by: GroupBy
    ) -> list[UsageTotals]:
        query = _TOTALS_SQL.format(
            group=_GROUP_SQL[group_by], tenant="" if tenant is None else "AND tenant = ?"
        )
        args: tuple[object, ...] = (start, end) if tenant is None else (start, end, tenant)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        out = []
        for g, *sums, latency in rows:
            totals = UsageTotals(str(g), *(int(v) for v in sums))
            totals.latency_ms_total = float(latency)
            out.append(totals)
        return out

    # -- counters --------------------------------------------------------------
    async def add_to_counter(
        self, name: str, window_start: int, amount: int, limit: int | None, expires_at: float
    ) -> CounterResult:
        with self._lock:
            self._maybe_purge()
            # IMMEDIATE takes the write lock up front, so the read-check-write below
            # cannot interleave with another connection (process) doing the same.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT value FROM counters WHERE name = ? AND window_start = ?",
                    (name, window_start),
                ).fetchone()
                current = int(row[0]) if row else 0
                if amount > 0 and limit is not None and current + amount > limit:
                    self._db.execute("COMMIT")
                    return CounterResult(admitted=False, value=current)
                self._db.execute(
                    "INSERT INTO counters (name, window_start, value, expires_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (name, window_start)"
                    " DO UPDATE SET value = value + excluded.value,"
                    " expires_at = excluded.expires_at",
                    (name, window_start, amount, expires_at),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return CounterResult(admitted=True, value=current + amount)

    async def get_counter(self, name: str, window_start: int) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM counters WHERE name = ? AND window_start = ?",
                (name, window_start),
            ).fetchone()
        return int(row[0]) if row else 0

    # -- leases ----------------------------------------------------------------
    async def acquire_lease(
        self, name: str, holder: str, limit: int, expires_at: float, now: float
    ) -> CounterResult:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # count and insert as one, across processes
            try:
                self._db.execute(
                    "DELETE FROM leases WHERE name = ? AND expires_at <= ?", (name, now)
                )
                row = self._db.execute(
                    "SELECT COUNT(*) FROM leases WHERE name = ? AND holder != ?", (name, holder)
                ).fetchone()
                held = int(row[0])
                if held >= limit:
                    self._db.execute("COMMIT")
                    return CounterResult(admitted=False, value=held)
                self._db.execute(
                    "INSERT OR REPLACE INTO leases (name, holder, expires_at) VALUES (?, ?, ?)",
                    (name, holder, expires_at),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return CounterResult(admitted=True, value=held + 1)

    async def release_lease(self, name: str, holder: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    # -- cache -----------------------------------------------------------------
    async def cache_get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value, compressed FROM cache WHERE key = ? AND expires_at > ?",
                (key, time.time()),
            ).fetchone()
        return decode_cache_value(bytes(row[0]), bool(row[1])) if row else None

    async def cache_put(self, key: str, value: bytes, expires_at: float) -> bool:
        encoded = encode_cache_value(key, value)
        if encoded is None:
            return False
        stored, compressed = encoded
        with self._lock:
            self._maybe_purge()
            self._db.execute(
                "INSERT OR REPLACE INTO cache (key, value, compressed, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (key, stored, int(compressed), expires_at),
            )
        return True

    # -- health ----------------------------------------------------------------
    async def put_health(self, endpoint: str, data: dict[str, Any], expires_at: float) -> None:
        self._put_health_row(endpoint, "health", json.dumps(data), expires_at)

    async def open_circuit(self, endpoint: str, until: float) -> None:
        self._put_health_row(endpoint, "circuit", json.dumps(until), until)

    def _put_health_row(self, endpoint: str, kind: str, body: str, expires_at: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO health (endpoint, kind, body, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (endpoint, kind, body, expires_at),
            )

    async def get_health(self, endpoints: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(endpoints))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        # Only "?" placeholders are formatted into the statement; the values are bound.
        query = (
            "SELECT endpoint, kind, body FROM health"  # nosec B608
            f" WHERE endpoint IN ({marks}) AND expires_at > ?"
        )
        with self._lock:
            rows = self._db.execute(
                query,
                (*wanted, time.time()),
            ).fetchall()
        return merge_health((endpoint, kind, json.loads(body)) for endpoint, kind, body in rows)

    # -- jobs ------------------------------------------------------------------
    async def put_job(
        self, job_id: str, data: dict[str, Any], expires_at: float | None = None
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (job_id, body, expires_at) VALUES (?, ?, ?)",
                (job_id, json.dumps(data), expires_at),
            )

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM jobs WHERE job_id = ? AND (expires_at IS NULL OR expires_at > ?)",
                (job_id, time.time()),
            ).fetchone()
        return dict(json.loads(row[0])) if row else None

    async def claim_job(self, job_id: str, data: dict[str, Any], now: float) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # other processes on the file wait here
            try:
                row = self._db.execute(
                    "SELECT body FROM jobs WHERE job_id = ? "
                    "AND (expires_at IS NULL OR expires_at > ?)",
                    (job_id, now),
                ).fetchone()
                if row is not None and not claimable(json.loads(row[0]), now):
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute(
                    "INSERT OR REPLACE INTO jobs (job_id, body, expires_at) VALUES (?, ?, NULL)",
                    (job_id, json.dumps(data)),
                )
                self._db.execute("COMMIT")
                return True
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- housekeeping ----------------------------------------------------------
    def _maybe_purge(self) -> None:
        """Delete expired counters and cache entries now and then (caller holds the lock)."""
        self._writes += 1
        if self._writes % _PURGE_EVERY:
            return
        now = time.time()
        self._db.execute("DELETE FROM counters WHERE expires_at <= ?", (now,))
        self._db.execute("DELETE FROM cache WHERE expires_at <= ?", (now,))
        self._db.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
        self._db.execute("DELETE FROM health WHERE expires_at <= ?", (now,))

    async def close(self) -> None:
        with self._lock:
            self._db.close()
