"""API key minting and hashing. A key is shown once; only its SHA-256 is ever stored.

Principals' ids: a stored key's is ``key_`` + a hash prefix; a verified OIDC token's
(pipeline/oidc.py) is ``jwt_`` + a hash of issuer and subject, and no stored key has it."""

from __future__ import annotations

import hashlib
import secrets
import time

from edgeroute.store.base import ApiKey, KeyLimits, KeyPolicy

KEY_PREFIX = "er-"
_KEY_ID_HEX = 16  # 64 bits of the hash: a public handle for listing and revoking


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


TOKEN_KEY_PREFIX = "jwt_"


def key_id_for(key_hash: str) -> str:
    return "key_" + key_hash[:_KEY_ID_HEX]


def is_token(principal: ApiKey) -> bool:
    """Whether ``principal`` came from a token (it lives as long as the request does),
    not from a key of the store (which a later run can look up by its id)."""
    return principal.key_id.startswith(TOKEN_KEY_PREFIX)


def mint_key(
    name: str,
    *,
    tenant: str | None = None,
    models: tuple[str, ...] = (),
    admin: bool = False,
    priority: int = 0,
    limits: KeyLimits | None = None,
    expires_at: float | None = None,
    ip_allow: tuple[str, ...] = (),
    policy: KeyPolicy | None = None,
) -> tuple[str, ApiKey]:
    """A new random key (256 bits) and the record to store for it."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_hash = hash_key(secret)
    record = ApiKey(
        key_id=key_id_for(key_hash),
        key_hash=key_hash,
        name=name,
        tenant=tenant or name,
        created_at=time.time(),
        models=models,
        admin=admin,
        priority=priority,
        limits=limits or KeyLimits(),
        expires_at=expires_at,
        ip_allow=ip_allow,
        policy=policy or KeyPolicy(),
    )
    return secret, record
