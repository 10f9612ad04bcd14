"""REST API Lambda authorizer (REQUEST type): an IAM policy for every answer.

It runs the gateway's own credential check (``Authenticator``: keys against the store,
JWTs against the OIDC issuers of ``EDGEROUTE_OIDC_CONFIG``), so a bad key or token is
refused before RouterFunction or StreamFunction is ever invoked. API Gateway caches the
answer per ``Authorization`` header, source address and resource path for
``AuthorizerCacheTtl`` seconds; so its answers name the whole stage (``policies``).
Scopes are checked here when
the resource names an endpoint (``/v1/chat/completions``); the catch-all resources do
not, and the app behind checks scopes on every request either way.

What API Gateway does with the answer: no bearer credential at all raises
``Unauthorized`` (its 401); a wrong, revoked or expired one, or a scope it lacks, is a
Deny (always its 403), whose context carries the OpenAI error's message, type and code
for the template's ACCESS_DENIED response. A store or JWKS outage raises anything else
(API Gateway answers 500 and caches nothing), never a cached denial. The store client
and the caches are built at import, during init, so SnapStart snapshots them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edgeroute.errors import AuthenticationFailed, PermissionDenied
from edgeroute.handlers.policies import allow, deny
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


class Unauthorized(Exception):
    """No credential: API Gateway answers 401 for an authorizer error whose message is
    exactly ``Unauthorized`` (any other message is a 500)."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def _header(event: dict[str, Any], name: str) -> str | None:
    """A request header by name, whatever case the client sent it in."""
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    method_arn = str(event["methodArn"])
    try:
        # Anthropic's SDKs send the key as x-api-key (the Messages routes' identity source).
        secret = bearer_token(_header(event, "authorization"), _header(event, "x-api-key"))
    except AuthenticationFailed:
        raise Unauthorized() from None
    request = event.get("requestContext") or {}
    address = (request.get("identity") or {}).get("sourceIp")
    try:
        key = _loop.run_until_complete(_authenticator.authenticate(secret, address))
        resource = str(event.get("resource") or request.get("resourcePath") or "")
        needed = scope_for_path(resource)
        if needed is not None:
            require(key, needed, f"{event.get('httpMethod', '')} {resource}")
    except (AuthenticationFailed, PermissionDenied) as refused:
        return deny(method_arn, refused)
    return allow(method_arn, key)
