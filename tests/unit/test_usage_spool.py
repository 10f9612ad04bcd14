"""Usage records the store refuses wait in the spool and reach the ledger in order once
it answers again; a restart keeps them (once a locked or full store lost them)."""

from __future__ import annotations

import stat
from pathlib import Path

from edgeroute.store.base import UsageRecord
from edgeroute.store.spool import UsageLedger
from edgeroute.store.sqlite import SQLiteStore
from tests.support.records import usage_line


def _record(n: int) -> UsageRecord:
    return usage_line(f"r{n}", tokens=n, created_at=1_700_000_000.0 + n)


class _FlakyStore(SQLiteStore):
    """The real embedded store, made to refuse usage records while ``down``."""

    down = False

    async def record_usage(self, record: UsageRecord) -> None:
        if self.down:
            raise OSError("database is locked")
        await super().record_usage(record)


async def _ledger_ids(store: SQLiteStore) -> list[str]:
    return [r.request_id for r in await store.query_usage(0, 2_000_000_000)]


async def test_refused_records_wait_and_arrive_in_order(tmp_path: Path) -> None:
    store = _FlakyStore(":memory:")
    ledger = UsageLedger(store, tmp_path / "spool.jsonl")
    await ledger.write(_record(1))
    store.down = True
    await ledger.write(_record(2))  # never raises: the caller already has its answer
    await ledger.write(_record(3))
    assert [r.request_id for r in ledger.waiting] == ["r2", "r3"]
    assert stat.S_IMODE((tmp_path / "spool.jsonl").stat().st_mode) == 0o600
    store.down = False
    await ledger.write(_record(4))  # drains the older ones first
    assert await _ledger_ids(store) == ["r1", "r2", "r3", "r4"]
    assert not ledger.waiting and (tmp_path / "spool.jsonl").read_text() == ""
    await store.close()


async def test_a_restart_keeps_what_waits(tmp_path: Path) -> None:
    store = _FlakyStore(":memory:")
    store.down = True
    first = UsageLedger(store, tmp_path / "spool.jsonl")
    await first.write(_record(1))
    await first.write(_record(2))
    store.down = False
    again = UsageLedger(store, tmp_path / "spool.jsonl")  # a new process, the same file
    assert await again.drain() == 0
    assert await _ledger_ids(store) == ["r1", "r2"]
    await store.close()


async def test_without_a_file_records_wait_in_memory(tmp_path: Path) -> None:
    store = _FlakyStore(":memory:")
    store.down = True
    ledger = UsageLedger(store, None)
    await ledger.write(_record(1))
    store.down = False
    assert await ledger.drain() == 0
    assert await _ledger_ids(store) == ["r1"]
    await store.close()


async def test_a_locked_store_fails_fast_and_the_record_waits(tmp_path: Path) -> None:
    # Once every write waited 5 s for the lock on the event loop: 20 s of stalled gateway.
    import sqlite3
    import time

    path = tmp_path / "edgeroute.db"
    store = SQLiteStore(path)
    ledger = UsageLedger(store, tmp_path / "spool.jsonl")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    started = time.perf_counter()
    await ledger.write(_record(1))
    assert time.perf_counter() - started < 3.0  # ~1 s; generous for a loaded machine
    assert [r.request_id for r in ledger.waiting] == ["r1"]
    other.execute("COMMIT")
    other.close()
    assert await ledger.drain() == 0
    assert await _ledger_ids(store) == ["r1"]
    await store.close()
