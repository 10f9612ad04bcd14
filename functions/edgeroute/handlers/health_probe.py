"""Scheduled health probe: sample every upstream endpoint and write it to the store."""

from __future__ import annotations

import asyncio
from typing import Any

from edgeroute.health.probe import probe_all
from edgeroute.observe import logs
from edgeroute.pipeline.anomaly_check import AnomalyCheck
from edgeroute.pipeline.reload import first_value, fresh, registry_files
from edgeroute.settings import Settings
from edgeroute.store import open_store
from edgeroute.upstreams.http import set_max_connections

logs.configure()  # JSON logs on Lambda (a no-op elsewhere)

_settings = Settings.from_env()
set_max_connections(_settings.max_connections)
_registry_file, _registry_default = registry_files(_settings)
# An s3:// registry not uploaded yet: the bundled one is probed, and no run fails.
_registry = first_value(_registry_file, _registry_default)
_store = open_store(_settings)
_loop = asyncio.new_event_loop()  # kept, so the upstream HTTP pool survives between runs
_anomalies = AnomalyCheck(_store)  # on the probe's schedule, every few minutes


async def _probe() -> dict[str, dict[str, Any]]:
    global _registry
    _registry = await fresh(_registry_file) or _registry  # a changed registry is probed too
    results = await probe_all(_registry, _store, ttl_s=_settings.health_ttl_s)
    await _anomalies.run_if_due()
    return results


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results = _loop.run_until_complete(_probe())
    return {"endpoints": len(results), "down": sorted(e for e, s in results.items() if not s["ok"])}
