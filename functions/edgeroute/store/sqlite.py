"""The embedded store: one SQLite file, used by ``edgeroute serve`` and on laptops.

Queries take tens of microseconds, so they run inline on the event loop; a lock
keeps the one connection safe when the CLI or threads share it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from edgeroute.store.base import ApiKey, KeyLimits, UsageRecord

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
"""


def _key_from_json(text: str) -> ApiKey:
    data = json.loads(text)
    data["models"] = tuple(data.get("models", ()))
    data["limits"] = KeyLimits(**data.get("limits", {}))
    return ApiKey(**data)


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    async def put_key(self, key: ApiKey) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO api_keys (key_id, body) VALUES (?, ?)",
                (key.key_id, json.dumps(asdict(key))),
            )

    async def get_key(self, key_id: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return _key_from_json(row[0]) if row else None

    async def list_keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM api_keys").fetchall()
        return sorted((_key_from_json(r[0]) for r in rows), key=lambda k: k.created_at)

    async def record_usage(self, record: UsageRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO usage (request_id, tenant, created_at, body) VALUES (?, ?, ?, ?)",
                (record.request_id, record.tenant, record.created_at, json.dumps(asdict(record))),
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
            rows = self._db.execute(sql + " ORDER BY created_at", args).fetchall()
        return [UsageRecord(**json.loads(r[0])) for r in rows]

    async def close(self) -> None:
        with self._lock:
            self._db.close()
