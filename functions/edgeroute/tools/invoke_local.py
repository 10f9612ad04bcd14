"""What a local ``edgeroute invoke`` puts where a deployed stack's resources would be.

Invoked with no ``EDGEROUTE_TABLE_*`` (and no ``EDGEROUTE_STORE=dynamodb``), a function
runs as ``edgeroute serve`` does: on the embedded SQLite store, the local registry and
routing policy (not the stack's ``s3://`` copies), no S3 audit archive, and llama.cpp's
server as the ``small`` model when the registry is the repository's. The sample events'
placeholder key becomes the development key (``.edgeroute/dev-key``), so the README's
``edgeroute invoke`` examples answer on a fresh clone.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from edgeroute.config.policy import DEFAULT_POLICY
from edgeroute.settings import Settings, TableNames
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.tools.devkey import dev_key, dev_key_file

# The key the sample events in infra/events carry.
PLACEHOLDER_KEY = "er-REPLACE-WITH-A-KEY"
_LOCAL_LLM = "EDGEROUTE_LOCAL_LLM_URL"  # the repository registry's `small` endpoint


def runs_locally(caller_env: Mapping[str, str]) -> bool:
    """Whether the caller names no deployed (or emulated) tables: then the function runs
    on the local stand-ins."""
    named = any(caller_env.get(TableNames.env_var(r)) for r in TableNames.roles())
    return not named and caller_env.get("EDGEROUTE_STORE", "sqlite") != "dynamodb"


def _absolute(location: str) -> str:
    return location if location.startswith("s3://") else str(Path(location).absolute())


def local_environment(settings: Settings) -> dict[str, str]:
    """The variables that point the function at the local stand-ins, from the caller's
    settings (paths made absolute: the function runs in its code folder)."""
    return {
        "EDGEROUTE_STORE": "sqlite",
        "EDGEROUTE_SQLITE_PATH": _absolute(settings.sqlite_path),
        "EDGEROUTE_REGISTRY": _absolute(settings.registry),
        "EDGEROUTE_POLICY": _absolute(settings.policy or str(DEFAULT_POLICY)),
        "EDGEROUTE_AUDIT_BUCKET": settings.audit.bucket,
    }


def without_tables(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the template's table names (placeholders for a local run)."""
    tables = {TableNames.env_var(r) for r in TableNames.roles()}
    return {k: v for k, v in env.items() if k not in tables}


def with_dev_key(raw_event: str, settings: Settings) -> str:
    """The event with its placeholder key replaced by the development key (minted into
    the SQLite store when there is none yet)."""
    if PLACEHOLDER_KEY not in raw_event:
        return raw_event
    store = SQLiteStore(_absolute(settings.sqlite_path))
    try:
        secret = dev_key(store, dev_key_file(settings))
    finally:
        asyncio.run(store.close())
    return raw_event.replace(PLACEHOLDER_KEY, secret)


@contextmanager
def local_upstream(settings: Settings, env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """llama.cpp's server for the repository registry's ``small`` model, for the length
    of the invoke (as ``edgeroute serve --local-upstream`` starts it); nothing when the
    caller brings its own registry or upstream."""
    default = Settings.model_fields["registry"].get_default(call_default_factory=True)
    if env.get(_LOCAL_LLM) or _absolute(settings.registry) != _absolute(str(default)):
        yield {}
        return
    from edgeroute.tools import llama

    proc: subprocess.Popen[bytes]
    proc, base_url = llama.start()
    try:
        yield {_LOCAL_LLM: base_url}
    finally:
        llama.stop(proc)
