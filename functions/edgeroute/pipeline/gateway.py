"""The long-lived parts of one gateway process, built once from settings.

A Lambda instance, a `edgeroute serve` process and a test each hold one
``Gateway``; every request reads from it and nothing in it is per-request. The
registry and the policy are live (pipeline/reload.py): each is replaced whole, with
one assignment, when its file changes, so a request reads ``gw.registry`` once and
keeps what it read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgeroute.config.policy import Policy
from edgeroute.config.registry import Protocol, Registry
from edgeroute.edge.classifier import classify
from edgeroute.health.circuits import HealthView
from edgeroute.pipeline.after_answer import AfterAnswer
from edgeroute.pipeline.audit import AuditTrail
from edgeroute.pipeline.authenticate import Authenticator
from edgeroute.pipeline.cache import ResponseCache
from edgeroute.pipeline.deferred import DeferredClassifier
from edgeroute.pipeline.reload import ConfigFiles
from edgeroute.settings import Settings
from edgeroute.store import Store, open_store
from edgeroute.store.spool import UsageLedger
from edgeroute.upstreams.http import load_transport, set_max_connections


def configure_edge(settings: Settings) -> None:
    """Hand the edge models their folder, threads and batching (process-wide, like their
    sessions); before the first edge model runs."""
    # edge.models imports onnxruntime only for a session; the other edge modules import
    # numpy and sentencepiece, so they load only when a model first runs.
    from edgeroute.edge import models

    models.configure(settings.edge_models, settings.edge_threads, settings.embed_batching)


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
    config_files: ConfigFiles | None = None  # None: registry and policy never change
    # The wall clock routing reads (policy schedules, circuits' pauses, budget months).
    clock: Callable[[], float] = field(default=time.time)
    ledger: UsageLedger = field(init=False)
    audit: AuditTrail = field(init=False)
    deferred: DeferredClassifier = field(init=False)  # named models' ledger classification
    after_answer: AfterAnswer = field(init=False)  # ledger lines nobody waits for
    _reloading: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        spool = self.settings.usage_spool
        self.ledger = UsageLedger(self.store, Path(spool) if spool else None)
        self.audit = AuditTrail.from_settings(self.settings)
        self.deferred = DeferredClassifier(classify)
        self.after_answer = AfterAnswer()

    @classmethod
    def from_settings(cls, settings: Settings, *, warm: bool = True) -> Gateway:
        """``warm=False`` leaves the edge models and the upstream HTTP transport to the
        first request that needs them (~0.5 s to import and load): for a process whose
        init is on a cold request's path and not snapshotted."""
        set_max_connections(settings.max_connections)
        configure_edge(settings)
        store = open_store(settings)
        files = ConfigFiles(settings)
        registry, policy = files.initial()
        if warm:
            load_transport()
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
            config_files=files,
        )

    def check_config(self) -> None:
        """Called as each request starts: at most every ``EDGEROUTE_CONFIG_RELOAD_S``,
        start looking for a new registry or policy in the background; otherwise only a
        monotonic-clock comparison."""
        files = self.config_files
        if files is None or (self._reloading is not None and not self._reloading.done()):
            return
        if files.due():
            self._reloading = asyncio.get_running_loop().create_task(self.reload_config())

    async def reload_config(self) -> None:
        """Swap in whichever of the registry and the policy changed and validated; what
        is derived from them follows (edge models warmed, cached health views read
        again for the new circuits and their TTL)."""
        if self.config_files is None:
            return
        registry, policy = await self.config_files.changes()
        if registry is not None:
            await asyncio.to_thread(_warm_edge, registry)  # before it serves: no cold request
            self.registry = registry
        if policy is not None:
            self.policy = policy
        if registry is not None or policy is not None:
            self.health.reset(self.policy.health_ttl_s)
