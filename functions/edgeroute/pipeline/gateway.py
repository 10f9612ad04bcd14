"""The long-lived parts of one gateway process, built once from settings.

A Lambda instance, a `edgeroute serve` process and a test each hold one
``Gateway``; every request reads from it and nothing in it is per-request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeroute.config.policy import Policy, load_policy
from edgeroute.config.registry import Protocol, Registry, load_registry
from edgeroute.health.circuits import HealthView
from edgeroute.pipeline.audit import AuditTrail
from edgeroute.pipeline.authenticate import Authenticator
from edgeroute.pipeline.cache import ResponseCache
from edgeroute.settings import Settings
from edgeroute.store import Store, open_store
from edgeroute.store.spool import UsageLedger
from edgeroute.upstreams.http import set_max_connections


def configure_edge(settings: Settings) -> None:
    """Hand the edge models their folder, threads and batching (process-wide, like their
    sessions); before the first edge model runs."""
    # The edge modules import onnxruntime, numpy and sentencepiece: loaded only when used.
    from edgeroute.edge import embedder, models

    models.configure(settings.edge_models, settings.edge_threads)
    embedder.configure(settings.embed_batching)


def _warm_edge(registry: Registry) -> None:
    """Load the edge models at init, so Lambda SnapStart snapshots warm sessions and the
    first request does not pay for them."""
    from edgeroute.edge import models

    if (models.models_dir() / "routing" / "heads.npz").is_file():
        from edgeroute.edge import classifier

        classifier.warm()
    elif any(m.protocol is Protocol.EDGE for m in registry.models()):
        from edgeroute.edge import embedder

        embedder.warm()


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    store: Store
    authenticator: Authenticator
    cache: ResponseCache
    policy: Policy
    health: HealthView
    ledger: UsageLedger = field(init=False)
    audit: AuditTrail = field(init=False)

    def __post_init__(self) -> None:
        spool = self.settings.usage_spool
        self.ledger = UsageLedger(self.store, Path(spool) if spool else None)
        self.audit = AuditTrail.from_settings(self.settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        set_max_connections(settings.max_connections)
        configure_edge(settings)
        store = open_store(settings)
        registry = load_registry(settings.registry, settings.registry_env_allow)
        policy = load_policy(settings.policy or None)
        _warm_edge(registry)
        return cls(
            settings=settings,
            registry=registry,
            store=store,
            authenticator=Authenticator.from_settings(store, settings),
            cache=ResponseCache(
                store, ttl_s=settings.cache_ttl_s, max_bytes=settings.cache_max_bytes
            ),
            policy=policy,
            health=HealthView(store, policy.health_ttl_s),
        )
