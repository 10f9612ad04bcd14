"""Settings read once from the environment, as Lambda functions and `edgeroute serve` get them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _default_registry() -> str:
    return str(_REPO_ROOT / "infra" / "models.yaml")


@dataclass(frozen=True)
class Settings:
    registry: str = field(default_factory=_default_registry)
    store: str = "sqlite"
    sqlite_path: str = ".edgeroute/edgeroute.db"
    key_cache_ttl_s: float = 5.0
    max_body_bytes: int = 6 * 1024 * 1024  # Lambda's synchronous payload limit
    max_connections: int = 512
    policy: str = ""  # empty: infra/routing.yaml
    classify: str = "always"  # always | auto (only requests the router must decide)
    cache_ttl_s: float = 3600.0
    cache_max_bytes: int = 64 * 1024 * 1024  # the in-process (L1) part of the cache

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        default = cls()
        return cls(
            registry=env.get("EDGEROUTE_REGISTRY", default.registry),
            store=env.get("EDGEROUTE_STORE", default.store),
            sqlite_path=env.get("EDGEROUTE_SQLITE_PATH", default.sqlite_path),
            key_cache_ttl_s=float(env.get("EDGEROUTE_KEY_CACHE_TTL", default.key_cache_ttl_s)),
            max_body_bytes=int(env.get("EDGEROUTE_MAX_BODY_BYTES", default.max_body_bytes)),
            max_connections=int(env.get("EDGEROUTE_MAX_CONNECTIONS", default.max_connections)),
            policy=env.get("EDGEROUTE_POLICY", default.policy),
            classify=env.get("EDGEROUTE_CLASSIFY", default.classify),
            cache_ttl_s=float(env.get("EDGEROUTE_CACHE_TTL", default.cache_ttl_s)),
            cache_max_bytes=int(env.get("EDGEROUTE_CACHE_MAX_BYTES", default.cache_max_bytes)),
        )
