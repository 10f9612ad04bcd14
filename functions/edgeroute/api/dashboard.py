"""``GET /dashboard``: where the money and the time go, for an admin, in a browser.

Signing in: an admin key in the ``Authorization`` header (scripts, curl), or a session
cookie from ``POST /dashboard/session`` (a browser's form: the key is sent once, in the
body, never in a URL). The cookie is ``<key id>.<expiry>.<HMAC-SHA256>`` keyed by the
key's stored hash, so any instance can check it without a shared secret, and revoking,
expiring or demoting the key ends its sessions. Errors for scripts are OpenAI-shaped
JSON; a browser without a session gets the sign-in form (401).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edgeroute.api.dashboard_page import RANGES, dashboard_html, sign_in_html
from edgeroute.api.routes import client_address, gateway
from edgeroute.errors import AuthenticationFailed, EdgerouteError, InvalidRequest, PermissionDenied
from edgeroute.pipeline.authenticate import bearer_token
from edgeroute.pipeline.scopes import acts_as_admin
from edgeroute.store.base import ApiKey
from edgeroute.store.report import load_report

router = APIRouter(include_in_schema=False)

COOKIE = "edgeroute_dashboard"
SESSION_S = 8 * 3600
_PATH = "/dashboard"


def _signature(key: ApiKey, expires: int) -> str:
    message = f"{key.key_id}.{expires}".encode()
    return hmac.new(key.key_hash.encode(), message, hashlib.sha256).hexdigest()


def session_cookie(key: ApiKey, now: float) -> str:
    expires = int(now) + SESSION_S
    return f"{key.key_id}.{expires}.{_signature(key, expires)}"


def _admin(principal: ApiKey) -> ApiKey:
    if not acts_as_admin(principal):
        raise PermissionDenied(
            "The dashboard shows every tenant's spend: sign in with an admin key "
            "(created with --admin; if scoped, with the 'admin' scope).",
            code="admin_only",
        )
    return principal


async def _from_cookie(request: Request) -> ApiKey | None:
    value = request.cookies.get(COOKIE, "")
    key_id, _, rest = value.partition(".")
    expires_text, _, signature = rest.partition(".")
    if not (key_id and expires_text.isdigit() and signature):
        return None
    now = time.time()
    key = await gateway(request).store.get_key(key_id)
    if key is None or key.revoked or key.expired(now) or int(expires_text) <= now:
        return None
    if not hmac.compare_digest(signature, _signature(key, int(expires_text))):
        return None
    if not key.allows_address(request.state.client_address):
        return None
    return key if acts_as_admin(key) else None


async def _principal(request: Request) -> ApiKey | None:
    """The admin behind the request: its header key (errors raised), or its session
    (``None`` when there is none, or it no longer holds)."""
    gw = gateway(request)
    request.state.client_address = client_address(request, gw.settings.trusted_proxies)
    headers = request.headers
    if headers.get("authorization") or headers.get("x-api-key"):
        secret = bearer_token(headers.get("authorization"), headers.get("x-api-key"))
        principal = await gw.authenticator.authenticate(secret, request.state.client_address)
        request.state.principal = principal
        return _admin(principal)
    session = await _from_cookie(request)
    if session is not None:
        request.state.principal = session
    return session


def _window(chosen: str) -> tuple[float, float]:
    if chosen not in RANGES:
        raise InvalidRequest(
            f"Invalid 'range' {chosen[:20]!r}: choose one of {', '.join(RANGES)}.",
            param="range",
        )
    end = time.time()
    return end - RANGES[chosen], end


@router.get(_PATH)
async def dashboard(request: Request, range: str = "24h", tenant: str | None = None) -> Response:
    start, end = _window(range)
    if await _principal(request) is None:
        return HTMLResponse(sign_in_html(), status_code=401)
    report, anomalies = await load_report(gateway(request).store, start, end, tenant)
    page = dashboard_html(report.as_json(), range, [a.as_json() for a in anomalies])
    return HTMLResponse(page, headers={"cache-control": "no-store"})


@router.get(_PATH + "/data")
async def dashboard_data(
    request: Request, range: str = "24h", tenant: str | None = None
) -> dict[str, Any]:
    """The figures the page shows, as JSON (``edgeroute usage --report`` prints them)."""
    start, end = _window(range)
    if await _principal(request) is None:
        raise AuthenticationFailed(
            "Send an admin key as 'Authorization: Bearer <key>', or sign in at /dashboard."
        )
    report, anomalies = await load_report(gateway(request).store, start, end, tenant)
    return {**report.as_json(), "anomalies": [a.as_json() for a in anomalies]}


def _submitted_key(body: bytes) -> str:
    """The ``key`` field of a form (or JSON) body; the middleware calls every POST body
    JSON, so the bytes are read here whatever Content-Type said."""
    text = body.decode("utf-8", "replace").strip()
    value: Any
    if text.startswith("{"):
        try:
            value = json.loads(text).get("key")
        except (ValueError, AttributeError):
            value = None
    else:
        value = next(iter(parse_qs(text).get("key", [])), None)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(
            "Send the admin key in the 'key' field of the form (or JSON) body.", param="key"
        )
    return value.strip()


@router.post(_PATH + "/session")
async def sign_in(request: Request) -> Response:
    gw = gateway(request)
    request.state.client_address = address = client_address(request, gw.settings.trusted_proxies)
    browser = "text/html" in request.headers.get("accept", "")
    try:
        principal = await gw.authenticator.authenticate(
            _submitted_key(await request.body()), address
        )
        request.state.principal = principal
        _admin(principal)
    except EdgerouteError as exc:
        if not browser:
            raise
        return HTMLResponse(sign_in_html(exc.message), status_code=exc.status_code)
    answer = RedirectResponse(_PATH, status_code=303)
    answer.set_cookie(
        COOKIE,
        session_cookie(principal, time.time()),
        max_age=SESSION_S,
        path=_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer
