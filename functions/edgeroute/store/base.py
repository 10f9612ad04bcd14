"""The storage port: what edgeroute keeps, and the protocol every backend implements.

Two backends pass one contract suite: SQLite (the embedded default for
``edgeroute serve``) and DynamoDB (production on Lambda). Methods are async so
the DynamoDB backend can run boto3 off the event loop while SQLite answers inline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class KeyLimits:
    """Per-key quotas; ``None`` means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    tokens_per_day: int | None = None
    budget_usd_micros: int | None = None


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: its SHA-256, never the key itself."""

    key_id: str
    key_hash: str
    name: str
    tenant: str
    created_at: float
    models: tuple[str, ...] = ()  # empty: every model in the registry
    revoked: bool = False
    admin: bool = False
    priority: int = 0  # higher is more important when tiers are congested
    limits: KeyLimits = field(default_factory=KeyLimits)

    def allows(self, model_name: str) -> bool:
        return not self.models or model_name in self.models


@dataclass(frozen=True)
class UsageRecord:
    """One ledger line per request, written after the response is on its way."""

    request_id: str
    key_id: str
    tenant: str
    endpoint: str  # chat, completions, embeddings ...
    model: str
    tier: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd_micros: int
    latency_ms: float
    status: int
    created_at: float
    cache_hit: bool = False
    attempts: int = 1
    usage_estimated: bool = False  # True when the upstream reported no usage and we counted


class Store(Protocol):
    """What the gateway needs from storage. Both backends pass tests/contract."""

    async def put_key(self, key: ApiKey) -> None:
        """Insert or replace a key record."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not; ``None`` when absent."""

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""

    async def record_usage(self, record: UsageRecord) -> None:
        """Append one usage record."""

    async def query_usage(
        self, start: float, end: float, tenant: str | None = None
    ) -> list[UsageRecord]:
        """Usage records with ``start <= created_at < end``, for one tenant or all."""

    async def close(self) -> None:
        """Release connections."""
