"""HTTP API Lambda authorizer (payload format 2.0, simple responses).

It runs the gateway's own credential check (``Authenticator``: keys against the store,
JWTs against the OIDC issuers of ``EDGEROUTE_OIDC_CONFIG``), so a bad key or token is
refused before RouterFunction is ever invoked, and API Gateway caches the answer per
``Authorization`` header, source address and route key for ``AuthorizerCacheTtl``
seconds. Scopes are checked here when the route key names an endpoint
(``POST /v1/chat/completions``); the template's catch-all routes do not, and the app
behind checks scopes on every request either way. A store or JWKS outage raises (API
Gateway answers 500 and caches nothing), never a cached denial. The store client and
the caches are built at import, during init, so SnapStart snapshots them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edgeroute.errors import AuthenticationFailed, PermissionDenied
from edgeroute.observe import logs
from edgeroute.pipeline.authenticate import Authenticator, bearer_token
from edgeroute.pipeline.scopes import require, scope_for_path
from edgeroute.settings import Settings
from edgeroute.store import open_store

logs.configure()  # JSON logs on Lambda (a no-op elsewhere)

_settings = Settings.from_env()
_authenticator = Authenticator.from_settings(open_store(_settings), _settings)
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
        route_key = str(event.get("routeKey") or "")
        needed = scope_for_path(route_key.partition(" ")[2])
        if needed is not None:
            require(key, needed, route_key)
    except (AuthenticationFailed, PermissionDenied):
        return DENY
    return {
        "isAuthorized": True,
        "context": {
            "key_id": key.key_id,
            "tenant": key.tenant,
            "scopes": " ".join(key.policy.scopes),  # empty: every endpoint
        },
    }
