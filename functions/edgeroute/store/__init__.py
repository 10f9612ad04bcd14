"""Storage: the ``Store`` protocol and a factory that picks the backend from settings."""

from __future__ import annotations

from edgeroute.settings import Settings
from edgeroute.store.base import ApiKey, CounterResult, KeyLimits, KeyPolicy, Store, UsageRecord

__all__ = [
    "ApiKey",
    "CounterResult",
    "KeyLimits",
    "KeyPolicy",
    "Store",
    "UsageRecord",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    """Open the configured backend: ``sqlite`` (embedded) or ``dynamodb``.

    DynamoDB takes its table names from the settings (``EDGEROUTE_TABLE_*``) and its
    endpoint from ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` when set (local servers).
    """
    if settings.store == "dynamodb":
        # Imported here so `edgeroute serve` on SQLite never loads boto3.
        from edgeroute.store.dynamodb import DynamoDBStore

        return DynamoDBStore(settings.tables())
    from edgeroute.store.sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path)
