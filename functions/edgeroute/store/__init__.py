"""Storage: the ``Store`` protocol and a factory that picks the backend from settings."""

from __future__ import annotations

from edgeroute.store.base import ApiKey, KeyLimits, Store, UsageRecord

__all__ = ["ApiKey", "KeyLimits", "Store", "UsageRecord", "open_store"]


def open_store(backend: str, sqlite_path: str) -> Store:
    """Open the configured backend: ``sqlite`` (embedded) or ``dynamodb``."""
    if backend == "sqlite":
        from edgeroute.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path)
    raise ValueError(f"EDGEROUTE_STORE={backend!r} is not a store backend; use 'sqlite'")
