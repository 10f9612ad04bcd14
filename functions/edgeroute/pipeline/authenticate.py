"""Authenticate a request's bearer credential: an edgeroute key against the store, with a
short in-memory cache, or a JWT from a configured OIDC issuer (``pipeline/oidc.py``).

The cache bounds store reads on the hot path; its TTL (``EDGEROUTE_KEY_CACHE_TTL``,
5 s by default) is also the longest a revoked key keeps working on a warm instance. An
expired key stops at its expiry: the time is checked on every request, cached or not.
Tokens are not cached: each request verifies its token's signature and expiry.
PyJWT and cryptography (~0.1 s to import) load only when an issuer is configured.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from edgeroute.config.oidc import load_oidc
from edgeroute.errors import AuthenticationFailed, PermissionDenied, StoreUnavailable
from edgeroute.settings import Settings
from edgeroute.store.base import ApiKey, Store
from edgeroute.store.keys import KEY_PREFIX, hash_key, key_id_for

if TYPE_CHECKING:
    from edgeroute.pipeline.oidc import TokenVerifier

_MAX_CACHED = 10_000
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jwt(secret: str) -> bool:
    """Three base64url parts joined by dots (an unsigned token's last one is empty)."""
    return _JWT_SHAPE.fullmatch(secret) is not None


def bearer_token(authorization: str | None, api_key_header: str | None = None) -> str:
    """The key from ``Authorization: Bearer ...`` (or ``x-api-key``), or a 401."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if api_key_header:
        return api_key_header.strip()
    raise AuthenticationFailed(
        "Missing API key: send it as 'Authorization: Bearer er-...'. "
        "Create one with 'edgeroute keys create --name NAME'.",
        code="missing_api_key",
    )


class Authenticator:
    def __init__(
        self, store: Store, ttl_s: float = 5.0, tokens: TokenVerifier | None = None
    ) -> None:
        self._store = store
        self._ttl = ttl_s
        self._tokens = tokens
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> Authenticator:
        """Keys from ``store``; tokens from the issuers in ``EDGEROUTE_OIDC_CONFIG``, if any."""
        oidc = load_oidc(settings.oidc_config)
        if oidc is None:
            return cls(store, settings.key_cache_ttl_s)
        from edgeroute.pipeline.oidc import TokenVerifier  # PyJWT: only with an issuer

        return cls(store, settings.key_cache_ttl_s, TokenVerifier(oidc))

    async def authenticate(self, secret: str, address: str | None = None) -> ApiKey:
        """The key's record or the token's principal, or a 401 (no such key, revoked,
        expired, a token that does not verify), a 403 (used from an address its allow-list
        leaves out; ``address`` is the client's) or a 503 (store or issuer keys down)."""
        if looks_like_jwt(secret):
            if self._tokens is None:
                raise AuthenticationFailed(
                    "This gateway takes edgeroute API keys ('er-...'), not bearer tokens "
                    "(JWTs): it trusts no OIDC issuer. Send an API key.",
                    code="invalid_token",
                )
            # On a thread: verifying may fetch the issuer's keys (bounded by its timeout).
            return await asyncio.to_thread(self._tokens.verify, secret)
        if not secret.startswith(KEY_PREFIX):
            raise AuthenticationFailed(
                "Invalid API key: edgeroute keys start with 'er-'. Check the key you sent."
            )
        key_hash = hash_key(secret)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            try:
                record = await self._store.get_key(key_id_for(key_hash))
            except Exception as exc:  # a store outage is not the caller's fault: 503, not 500
                raise StoreUnavailable("the API key") from exc
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[key_hash] = (now + self._ttl, record)
        if record is None or not hmac.compare_digest(record.key_hash, key_hash):
            raise AuthenticationFailed("Invalid API key: no such key. Check the key you sent.")
        if record.revoked:
            raise AuthenticationFailed(
                f"API key {record.key_id} was revoked. Ask an admin for a new key.",
                code="revoked_api_key",
            )
        if record.expired(time.time()):
            when = datetime.fromtimestamp(record.expires_at or 0, UTC).isoformat(timespec="seconds")
            raise AuthenticationFailed(
                f"API key {record.key_id} expired at {when}. Ask an admin for a new one "
                "('edgeroute keys rotate').",
                code="expired_api_key",
            )
        if not record.allows_address(address):
            raise PermissionDenied(
                f"API key {record.key_id} may not be used from {address or 'an unknown address'}"
                f": it is limited to {', '.join(record.ip_allow)}. Call from an allowed network, "
                "or ask an admin to change the key's --ip-allow.",
                code="ip_not_allowed",
            )
        return record
