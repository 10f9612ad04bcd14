"""Storage: the ``Store`` protocol and a factory that picks the backend from settings."""

from __future__ import annotations

from edgeroute.store.base import ApiKey, CounterResult, KeyLimits, Store, UsageRecord

__all__ = ["ApiKey", "CounterResult", "KeyLimits", "Store", "UsageRecord", "open_store"]


def open_store(backend: str, sqlite_path: str) -> Store:
    """Open the configured backend: ``sqlite`` (embedded) or ``dynamodb``.

    DynamoDB takes its table names from ``EDGEROUTE_TABLE_*`` and its endpoint from
    ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` when set (local servers).
    """
    if backend == "sqlite":
        from edgeroute.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path)
    if backend == "dynamodb":
        # Imported here so `edgeroute serve` on SQLite never loads boto3.
        from edgeroute.store.dynamodb import DynamoDBStore

        return DynamoDBStore()
    raise ValueError(
        f"EDGEROUTE_STORE={backend!r} is not a store backend; use 'sqlite' or 'dynamodb'"
    )
