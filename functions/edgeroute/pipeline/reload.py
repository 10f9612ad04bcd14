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

An ``s3://`` file has a default (``EDGEROUTE_REGISTRY_DEFAULT``, ``EDGEROUTE_POLICY_DEFAULT``:
the copies bundled with the function): when the object is missing or not valid at
start, the default serves, with an ERROR and a ``ConfigFallback`` metric, so a stack
whose bucket is still empty starts; the object is then watched like any file and its
first valid version replaces the default.
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


def _has_default(location: str, default: str) -> bool:
    """Whether ``location`` falls back to ``default`` when it cannot serve at start: only
    an S3 object (uploaded after the stack that reads it exists); a local file that
    cannot serve stops the start, as before."""
    return location.startswith("s3://") and bool(default) and default != location


def registry_files(settings: Settings) -> tuple[Watched[Registry], Watched[Registry] | None]:
    """The registry file (``EDGEROUTE_REGISTRY``) and the default it falls back to."""
    registry = registry_file(settings.registry, settings.registry_env_allow)
    if not _has_default(settings.registry, settings.registry_default):
        return registry, None
    default = registry_file(
        settings.registry_default, settings.registry_env_allow, "EDGEROUTE_REGISTRY_DEFAULT"
    )
    return registry, default


def policy_files(settings: Settings) -> tuple[Watched[Policy], Watched[Policy] | None]:
    """The policy file (``EDGEROUTE_POLICY``, else its default) and its fallback."""
    policy = policy_file(settings.policy or settings.policy_default)
    if not _has_default(settings.policy, settings.policy_default):
        return policy, None
    return policy, policy_file(settings.policy_default, "EDGEROUTE_POLICY_DEFAULT")


def first_value(watched: Watched[T], default: Watched[T] | None) -> T:
    """``watched``'s value at start. When it cannot be read or is not valid and it has a
    ``default``, the default's value (a broken default stops the start: it ships with
    the build), logged as an ERROR and counted as ``ConfigFallback``; later checks of
    ``watched`` then stay quiet until it changes. Blocking."""
    if default is None:
        return watched.read()
    try:
        return watched.read()
    except ConfigError as exc:
        value = default.read()
        log.error(
            "%s %s cannot serve; %s serves until a valid version is there: %s",
            watched.what,
            watched.location,
            default.location,
            exc,
        )
        metrics.config_fallback(watched.variable)
        return value


class ConfigFiles:
    """The registry and policy files of one gateway, their defaults, and when to look at
    them next."""

    def __init__(self, settings: Settings) -> None:
        self.registry, self.registry_default = registry_files(settings)
        self.policy, self.policy_default = policy_files(settings)
        self.interval_s = settings.config_reload_s
        self._next_check = time.monotonic() + self.interval_s

    def initial(self) -> tuple[Registry, Policy]:
        """The registry and the policy to start with (``first_value`` of each). Blocking."""
        return (
            first_value(self.registry, self.registry_default),
            first_value(self.policy, self.policy_default),
        )

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
