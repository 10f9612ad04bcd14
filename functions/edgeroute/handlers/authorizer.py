"""HTTP API Lambda authorizer (payload format 2.0, simple responses).

It runs the gateway's own key check (``Authenticator`` against the store), so a bad
key is refused before RouterFunction is ever invoked, and API Gateway caches the
answer per ``Authorization`` header for a few seconds. The store client and the key
cache are built at import, during init, so SnapStart snapshots them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edgeroute.errors import AuthenticationFailed, PermissionDenied
from edgeroute.pipeline.authenticate import Authenticator, bearer_token
from edgeroute.settings import Settings
from edgeroute.store import open_store

_settings = Settings.from_env()
_authenticator = Authenticator(open_store(_settings), _settings.key_cache_ttl_s)
# One loop for the life of the instance: the store's thread pool and clients stay warm.
_loop = asyncio.new_event_loop()

DENY: dict[str, Any] = {"isAuthorized": False}


def _authorization(event: dict[str, Any]) -> str | None:
    sources = event.get("identitySource") or []
    if sources and isinstance(sources[0], str):
        return sources[0]
    headers = event.get("headers") or {}
    return headers.get("authorization") or headers.get("Authorization")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        secret = bearer_token(_authorization(event))
        address = (event.get("requestContext") or {}).get("http", {}).get("sourceIp")
        key = _loop.run_until_complete(_authenticator.authenticate(secret, address))
    except (AuthenticationFailed, PermissionDenied):
        return DENY
    return {"isAuthorized": True, "context": {"key_id": key.key_id, "tenant": key.tenant}}
