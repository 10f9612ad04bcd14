"""Live configuration: the registry and the routing policy re-read when their files
change, checked at most every ``EDGEROUTE_CONFIG_RELOAD_S`` seconds per process (a
Lambda instance, an `edgeroute serve` process).

On the request path a check is a monotonic-clock comparison; when one is due, the
stat or S3 HEAD, and on a change the read and the full validation, run on a worker
thread while requests carry on with what they hold. The gateway then swaps each new
object in with one assignment (``Gateway.reload_config``), so a request sees one
whole registry, old or new, never a mix; requests already routed keep the models
they started with. A file that does not validate leaves the old one serving, with an
ERROR naming the file and the problem and a ``ConfigRefused`` metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TypeVar

from edgeroute.config.policy import Policy
from edgeroute.config.registry import Registry
from edgeroute.config.watch import Watched, policy_file, registry_file
from edgeroute.errors import ConfigError
from edgeroute.pipeline import metrics
from edgeroute.settings import Settings

log = logging.getLogger("edgeroute.pipeline.reload")
T = TypeVar("T")


class ConfigFiles:
    """The registry and policy files of one gateway, and when to look at them next."""

    def __init__(self, settings: Settings) -> None:
        self.registry: Watched[Registry] = registry_file(
            settings.registry, settings.registry_env_allow
        )
        self.policy: Watched[Policy] = policy_file(settings.policy)
        self.interval_s = settings.config_reload_s
        self._next_check = time.monotonic() + self.interval_s

    def due(self) -> bool:
        """Whether to look for changes now (then not again for ``interval_s``)."""
        now = time.monotonic()
        if self.interval_s <= 0 or now < self._next_check:
            return False
        self._next_check = now + self.interval_s
        return True

    async def changes(self) -> tuple[Registry | None, Policy | None]:
        """Each file's new, validated value, or None where it is unchanged or refused."""
        return await fresh(self.registry), await fresh(self.policy)


async def fresh(watched: Watched[T]) -> T | None:
    """``watched``'s new value, read on a worker thread; None when it did not change,
    or when the change was refused (logged as an ERROR naming the file, and counted)."""
    try:
        value = await asyncio.to_thread(watched.reread)
    except ConfigError as exc:
        log.error(
            "%s %s changed and was refused; the version read before keeps serving: %s",
            watched.what,
            watched.location,
            exc,
        )
        metrics.config_refused(watched.variable)
        return None
    except Exception:  # never let a reload take the gateway down
        log.exception("re-reading %s %s failed", watched.what, watched.location)
        return None
    if value is not None:
        log.info(
            "%s %s changed: the new version serves from now on", watched.what, watched.location
        )
    return value
