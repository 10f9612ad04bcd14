"""The storage port: what edgeroute keeps, and the protocol every backend implements.

Two backends pass one contract suite: SQLite (the embedded default for
``edgeroute serve``) and DynamoDB (production on Lambda). Methods are async so
the DynamoDB backend can run boto3 off the event loop while SQLite answers inline.
"""

from __future__ import annotations

import ipaddress
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edgeroute.store.responses import ResponseStore
    from edgeroute.store.usage import GroupBy, UsageTotals

# DynamoDB's item limit: "400 KB" of attribute names and values, read as 400,000 bytes
# to stay clear of it (real DynamoDB allows 409,600, moto 405,000). Both backends
# apply it so a cache entry that works locally also works in production.
MAX_ITEM_BYTES = 400_000
# Room for the key's other attributes (names, expiry, flags) inside one item.
_ITEM_OVERHEAD = 128
# Below this, zlib saves too little to be worth the CPU on the hot path.
COMPRESS_OVER = 8 * 1024


@dataclass(frozen=True)
class KeyLimits:
    """Per-key quotas; ``None`` means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None  # requests in flight at once
    tokens_per_day: int | None = None
    budget_usd_micros: int | None = None


PII_MODES = ("mask", "block", "allow")
GUARDRAIL_STAGES = ("off", "input", "both")


@dataclass(frozen=True)
class KeyPolicy:
    """What the gateway does with a key's traffic beyond quotas; ``None``: the operator's
    default (settings)."""

    scopes: tuple[str, ...] = ()  # endpoints the key may call; empty: every non-admin one
    pii: str | None = None  # one of PII_MODES
    guardrail: str | None = None  # one of GUARDRAIL_STAGES: moderation on input / and output
    audit_bodies: bool = False  # keep prompt and answer bodies in the audit archive


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
    expires_at: float | None = None  # epoch seconds; None: never
    ip_allow: tuple[str, ...] = ()  # CIDRs the key may be used from; empty: anywhere
    policy: KeyPolicy = field(default_factory=KeyPolicy)

    def allows(self, model_name: str) -> bool:
        return not self.models or model_name in self.models

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def allows_address(self, address: str | None) -> bool:
        """Whether a request from ``address`` may use this key (unknown: only if unlimited)."""
        if not self.ip_allow:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in self.ip_allow)


_ATTEMPT_MARK = "#"


def attempt_id(request_id: str, attempt: int) -> str:
    """The ledger id of a failed attempt before a fallback: ``<request id>#<attempt>``."""
    return f"{request_id}{_ATTEMPT_MARK}{attempt}"


@dataclass(frozen=True)
class UsageRecord:
    """One ledger line per request, written after the response is on its way, plus one
    per attempt that failed before a fallback answered (``attempt_id``)."""

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
    replica: str = ""  # the replica that served it, by label ("" for a single endpoint)
    version: str = ""  # that replica's version label, to compare a canary with the rest
    degraded: str = ""  # why a model below the tier asked for answered; '' when none did
    task: str = ""  # the classifier's task for the request; '' when it was not classified
    complexity: float | None = None  # the classifier's complexity, 0-1
    asked: str = ""  # the model name the request gave (auto, a tier, a model), for the dashboard
    route_reason: str = ""  # why the model that answered was chosen
    fingerprint: str = ""  # a failed request's body hash: the same failure sent again

    @property
    def failed_attempt(self) -> bool:
        """A failed attempt's line, not a request of its own."""
        return _ATTEMPT_MARK in self.request_id


@dataclass(frozen=True)
class CounterResult:
    """Outcome of one conditional counter update.

    ``value`` is the counter after the update when admitted, or its current value
    when refused (so callers can fill rate-limit headers without a second read).
    """

    admitted: bool
    value: int


# Both backends keep a key or a usage record as one JSON body, written and read here.


def key_to_json(key: ApiKey) -> str:
    return json.dumps(asdict(key))


def key_from_json(text: str) -> ApiKey:
    data = json.loads(text)
    data["models"] = tuple(data.get("models", ()))
    data["ip_allow"] = tuple(data.get("ip_allow", ()))
    data["limits"] = KeyLimits(**data.get("limits", {}))
    policy = data.get("policy", {})
    data["policy"] = KeyPolicy(**{**policy, "scopes": tuple(policy.get("scopes", ()))})
    return ApiKey(**data)


def usage_to_json(record: UsageRecord) -> str:
    return json.dumps(vars(record))


def usage_from_json(text: str) -> UsageRecord:
    return UsageRecord(**json.loads(text))


def merge_health(rows: Iterable[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
    """``get_health``'s answer from unexpired rows ``(endpoint, kind, value)``: a
    ``"health"`` row's value is the sample, a ``"circuit"`` row's the open-until time."""
    out: dict[str, dict[str, Any]] = {}
    # Circuits last, so a sample that happens to hold the key cannot hide an open circuit.
    for endpoint, kind, value in sorted(rows, key=lambda row: row[1] == "circuit"):
        entry = out.setdefault(endpoint, {})
        if kind == "health":
            entry.update(value)
        else:
            entry["circuit_open_until"] = float(value)
    return out


def encode_cache_value(key: str, value: bytes) -> tuple[bytes, bool] | None:
    """The bytes to store and whether they are zlib-compressed; ``None`` if too big.

    Shared by both backends so the oversize rule is the same everywhere.
    """
    stored, compressed = value, False
    if len(value) > COMPRESS_OVER:
        packed = zlib.compress(value, 6)
        if len(packed) < len(value):
            stored, compressed = packed, True
    if len(stored) + len(key.encode()) + _ITEM_OVERHEAD > MAX_ITEM_BYTES:
        return None
    return stored, compressed


def decode_cache_value(stored: bytes, compressed: bool) -> bytes:
    return zlib.decompress(stored) if compressed else stored


class Store(Protocol):
    """What the gateway needs from storage. Both backends pass tests/contract."""

    @property
    def responses(self) -> ResponseStore:
        """Stored Responses and their background jobs (store/responses)."""

    # -- keys ------------------------------------------------------------------
    async def put_key(self, key: ApiKey) -> None:
        """Insert or replace a key record (also how keys are updated and revoked)."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not; ``None`` when absent."""

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""

    # -- usage ledger ----------------------------------------------------------
    async def record_usage(self, record: UsageRecord) -> None:
        """Append one usage record."""

    async def query_usage(
        self, start: float, end: float, tenant: str | None = None
    ) -> list[UsageRecord]:
        """Usage records with ``start <= created_at < end``, for one tenant or all,
        ordered by ``created_at``."""

    async def summarize_usage(
        self, start: float, end: float, tenant: str | None, group_by: GroupBy
    ) -> list[UsageTotals]:
        """Per-group sums (``store.usage``) of the records ``query_usage`` would return,
        sorted by group, computed without holding every record in memory."""

    # -- quota counters --------------------------------------------------------
    async def add_to_counter(
        self, name: str, window_start: int, amount: int, limit: int | None, expires_at: float
    ) -> CounterResult:
        """Atomically add ``amount`` to counter ``(name, window_start)`` unless the
        result would exceed ``limit``. ``limit=None`` and negative amounts (giving
        back unused reservations) are always admitted. ``expires_at`` (epoch seconds)
        lets the backend drop the counter once its window is over."""

    async def get_counter(self, name: str, window_start: int) -> int:
        """The counter's value; 0 when it has never been written."""

    # -- leases ----------------------------------------------------------------
    async def acquire_lease(
        self, name: str, holder: str, limit: int, expires_at: float, now: float
    ) -> CounterResult:
        """Atomically give ``holder`` one of ``limit`` slots under ``name`` until
        ``expires_at``, unless ``limit`` other unexpired leases are held (leases past
        ``now`` are dropped, so a holder that died frees its slot when its lease ends).
        ``value`` is the number of leases held, this one included when admitted."""

    async def release_lease(self, name: str, holder: str) -> None:
        """Give ``holder``'s slot under ``name`` back; nothing when it holds none."""

    # -- response cache --------------------------------------------------------
    async def cache_get(self, key: str) -> bytes | None:
        """The cached value, or ``None`` when absent or past its expiry."""

    async def cache_put(self, key: str, value: bytes, expires_at: float) -> bool:
        """Store a value until ``expires_at``; ``False`` (and nothing stored) when it
        would not fit in one DynamoDB item even compressed."""

    # -- endpoint health and circuits -------------------------------------------
    async def put_health(self, endpoint: str, data: dict[str, Any], expires_at: float) -> None:
        """Replace the endpoint's health sample (JSON-serialisable), valid until expiry."""

    async def open_circuit(self, endpoint: str, until: float) -> None:
        """Mark the endpoint's circuit open until ``until``; a past time closes it."""

    async def get_health(self, endpoints: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Current health per endpoint: its last unexpired sample, plus
        ``"circuit_open_until"`` while a circuit is open. Endpoints with neither
        are absent from the result."""

    # -- batch jobs ------------------------------------------------------------
    async def put_job(
        self, job_id: str, data: dict[str, Any], expires_at: float | None = None
    ) -> None:
        """Insert or replace a batch job's state (JSON-serialisable)."""

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        """The job's state, or ``None`` when absent or expired."""

    async def claim_job(self, job_id: str, data: dict[str, Any], now: float) -> bool:
        """Write ``data`` (an active status with a ``lease_until``) as the job's state,
        atomically, unless the job exists and is finished or leased past ``now`` by
        someone else (store/job_listing.py ``ACTIVE``). True when this caller now owns
        the job."""

    async def list_jobs(self, owner: str, limit: int, below: str | None) -> list[dict[str, Any]]:
        """Listed rows of ``owner``, newest first, below the cursor (store/job_listing.py)."""

    async def abandoned_jobs(self, now: float) -> list[dict[str, Any]]:
        """Batch jobs a ``claim_job`` at ``now`` would take: active, lease run out."""

    async def close(self) -> None:
        """Release connections."""
