"""Usage records the store could not take wait here, in order, until it can.

A request answered while the store was locked, full or unreachable must still be
accounted: its record goes to the spool (a JSON-lines file, and memory) and is written
before any newer record once the store answers again, so the ledger keeps its order and
loses nothing. The file survives a restart of the process (locally; on Lambda, of the
instance's later invocations); when it cannot be written either, the records are kept in
memory and logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from dataclasses import asdict
from pathlib import Path

from edgeroute.store.base import Store, UsageRecord

log = logging.getLogger("edgeroute.store.spool")


class UsageLedger:
    """Writes usage records to the store, spooling the ones it cannot take."""

    def __init__(self, store: Store, spool_path: Path | None) -> None:
        self.store = store
        self.path = spool_path
        self.waiting: deque[UsageRecord] = deque(self._read())
        self._lock = asyncio.Lock()  # one writer at a time keeps the order

    def _read(self) -> list[UsageRecord]:
        if self.path is None or not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(UsageRecord(**json.loads(line)))
        if records:
            log.warning("%d usage records wait in %s for the store", len(records), self.path)
        return records

    def _spool(self, record: UsageRecord) -> None:
        """Keep one more record: in memory, and appended to the file (one line, however
        long the outage; readable by owner only)."""
        self.waiting.append(record)
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(record)) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            log.exception("usage spool %s cannot be written: records wait in memory", self.path)

    def _save(self) -> None:
        """Rewrite the file with what still waits (atomically, readable by owner only)."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for record in self.waiting:
                    handle.write(json.dumps(asdict(record)) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError:
            log.exception("usage spool %s cannot be written: records wait in memory", self.path)

    async def write(self, record: UsageRecord) -> None:
        """Write this record after every older one still waiting; never raises."""
        async with self._lock:
            if not self.waiting:
                try:
                    await self.store.record_usage(record)
                    return
                except Exception:
                    log.exception("usage record %s waits in the spool", record.request_id)
                    self._spool(record)
                    return
            self._spool(record)
            await self._drain()

    async def drain(self) -> int:
        """Write what waits, oldest first, until the store refuses; how many still wait."""
        async with self._lock:
            await self._drain()
            return len(self.waiting)

    async def _drain(self) -> None:
        written = 0
        while self.waiting:
            try:
                await self.store.record_usage(self.waiting[0])
            except Exception:
                log.warning("store still refuses usage records; %d wait", len(self.waiting))
                break
            self.waiting.popleft()
            written += 1
        if written:  # the file lost its oldest lines
            self._save()
