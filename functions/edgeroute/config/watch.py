"""A configuration file watched for change: re-read, parsed and validated in full when
its version (``loading.version_of``: mtime and size, or an S3 ETag) moves.

Nothing here keeps the parsed value: ``read`` and ``reread`` hand back a complete,
validated object or raise, so whoever holds the value swaps it in with one
assignment or not at all. A version that failed is remembered and not parsed again
until the file changes once more.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from edgeroute.config.loading import read_versioned, version_of
from edgeroute.config.policy import DEFAULT_POLICY, Policy, parse_policy
from edgeroute.config.registry import Registry, parse_registry
from edgeroute.errors import ConfigError

T = TypeVar("T")


class Watched(Generic[T]):
    def __init__(
        self, location: str, what: str, variable: str, parse: Callable[[str, str], T]
    ) -> None:
        """``parse(text, source)`` turns the file's text into its validated value;
        ``what`` and ``variable`` name the file in errors ("registry file",
        ``EDGEROUTE_REGISTRY``)."""
        self.location = location
        self.what = what
        self.variable = variable
        self._parse = parse
        self._version: str | None = None  # of the value last handed out
        self._refused: str | None = None  # the latest version that did not validate
        self._unreadable = False  # the latest look could not read it, and said so

    def read(self) -> T:
        """The file's value now (at start: a ConfigError stops the start). Blocking."""
        try:
            text, version = read_versioned(self.location, self.what, self.variable)
        except ConfigError:
            self._unreadable = True
            raise
        self._unreadable = False
        try:
            value = self._parse(text, self.location)
        except ConfigError:
            self._refused = version
            raise
        self._version, self._refused = version, None
        return value

    def reread(self) -> T | None:
        """The new value if the file changed since the last ``read``; None when it did
        not, or when this version was already refused. A ConfigError when the file
        cannot be read (once: then None until it can be) or its new version is not
        valid. Blocking: a stat or a HEAD request, and on a change a read and a parse."""
        try:
            version = version_of(self.location, self.what, self.variable)
        except ConfigError:
            # Told once: a missing object stays missing between checks, and saying so
            # every check would bury every other line of the log.
            if self._unreadable:
                return None
            self._unreadable = True
            raise
        self._unreadable = False
        if version in (self._version, self._refused):
            return None
        return self.read()


def registry_file(
    location: str, env_allow: Collection[str] = (), variable: str = "EDGEROUTE_REGISTRY"
) -> Watched[Registry]:
    """The registry at ``location`` (``variable``), as ``load_registry`` reads it."""
    return Watched(
        location,
        "registry file",
        variable,
        lambda text, source: parse_registry(text, source, env_allow),
    )


def policy_file(location: str = "", variable: str = "EDGEROUTE_POLICY") -> Watched[Policy]:
    """The routing policy at ``location`` (``variable``; empty: the bundled default)."""
    return Watched(location or str(DEFAULT_POLICY), "routing policy", variable, parse_policy)
