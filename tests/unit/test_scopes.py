"""Scopes limit the endpoints a key or a token may call: a call outside them is a 403
``insufficient_scope`` naming the scope it needs, checked once per request where the
credential is (the app's dependency, and the Lambda authorizer when the resource names
an endpoint). No scopes: every endpoint, as before. Cross-tenant usage needs the admin
flag, and, for a scoped principal, the ``admin`` scope too."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from edgeroute.api.app import create_app
from edgeroute.api.batches import router as batches_router
from edgeroute.api.routes import router
from edgeroute.config.oidc import OidcConfig
from edgeroute.pipeline.authenticate import Authenticator
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.oidc import TokenVerifier
from edgeroute.pipeline.scopes import SCOPE_NAMES, scope_for_path
from edgeroute.store.base import KeyLimits, KeyPolicy
from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.tools.cli import main
from tests.support.inprocess import CHAT, chat_body, ledger, memory_gateway
from tests.support.oidc_issuer import SigningKey, claims, issuer_config, write_jwks
from tests.support.scripted_upstream import ScriptedUpstream

REGISTRY = """
models:
  - {name: tiny, endpoint: 'http://small:1/v1', tier: small, retries: 0,
     capabilities: [chat, embeddings]}
"""
ISSUER_KEY = SigningKey("k1")


async def _call(
    gw: Gateway, secret: str, method: str, path: str, body: Any = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(gw), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        return await http.request(
            method, path, json=body, headers={"authorization": f"Bearer {secret}"}
        )


async def _key(gw: Gateway, *scopes: str, admin: bool = False, tenant: str = "t1") -> str:
    secret, record = mint_key("k", tenant=tenant, admin=admin, policy=KeyPolicy(scopes=scopes))
    await gw.store.put_key(record)
    return secret


def _refused_for_scope(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["type"] == "permission_error" and error["code"] == "insufficient_scope"
    assert f"needs the '{scope}' scope" in error["message"]


def test_every_authenticated_route_needs_a_named_scope() -> None:
    routes = [*router.routes, *batches_router.routes]
    paths = {r.path for r in routes if isinstance(r, APIRoute) and r.path != "/healthz"}
    assert paths and all(scope_for_path(p) is not None for p in paths), paths
    assert scope_for_path("/v1/models/smollm2") is scope_for_path("/v1/models")
    assert scope_for_path("/v1/{proxy+}") is None
    # The Files and Batches API, as the app declares it and as a caller sends it.
    for path in ("/v1/files", "/v1/files/file-1/content", "/v1/batches/batch_1/cancel"):
        assert scope_for_path(path) == "batch", path
    assert scope_for_path("/v1/filesystem") is None


async def test_the_files_and_batches_api_needs_the_batch_scope() -> None:
    gw = memory_gateway(REGISTRY)
    chat_only = await _key(gw, "chat")
    for method, path in [
        ("GET", "/v1/files"),
        ("GET", "/v1/files/file-abc/content"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/batches/batch_abc"),
        ("POST", "/v1/batches/batch_abc/cancel"),
    ]:
        _refused_for_scope(await _call(gw, chat_only, method, path, {}), "batch")
    batcher = await _key(gw, "batch", "chat")
    assert (await _call(gw, batcher, "GET", "/v1/files")).status_code == 200
    assert (await _call(gw, batcher, "GET", "/v1/batches")).status_code == 200
    missing = await _call(gw, batcher, "GET", "/v1/batches/batch_abc")
    assert missing.status_code == 404  # allowed through; there is no such batch
    unscoped = await _key(gw)
    assert (await _call(gw, unscoped, "GET", "/v1/batches")).status_code == 200


async def test_a_key_calls_only_the_endpoints_its_scopes_name(upstream: ScriptedUpstream) -> None:
    gw = memory_gateway(REGISTRY)
    secret = await _key(gw, "embeddings", "models")
    assert (await _call(gw, secret, "GET", "/v1/models")).status_code == 200
    assert (await _call(gw, secret, "GET", "/v1/models/tiny")).status_code == 200
    body = {"model": "tiny", "input": "hello"}
    assert (await _call(gw, secret, "POST", "/v1/embeddings", body)).status_code == 200
    refused = await _call(gw, secret, "POST", CHAT, chat_body("tiny"))
    _refused_for_scope(refused, "chat")
    assert "embeddings, models" in refused.json()["error"]["message"]
    _refused_for_scope(
        await _call(gw, secret, "POST", "/v1/classify", chat_body("tiny")), "classify"
    )
    _refused_for_scope(await _call(gw, secret, "POST", "/v1/route", chat_body("tiny")), "route")
    _refused_for_scope(await _call(gw, secret, "GET", "/v1/usage"), "usage")
    assert len(upstream.calls) == 1  # the embeddings call only
    # Unscoped: every endpoint, as before scopes existed.
    unscoped = await _key(gw)
    assert (await _call(gw, unscoped, "POST", CHAT, chat_body("tiny"))).status_code == 200
    assert (await _call(gw, unscoped, "GET", "/v1/usage")).status_code == 200


async def test_other_tenants_usage_needs_the_admin_flag_and_scope() -> None:
    gw = memory_gateway(REGISTRY)
    cases = {
        await _key(gw, admin=True): 200,  # unscoped admin, as before
        await _key(gw, "usage", "admin", admin=True): 200,
        await _key(gw, "usage", admin=True): 403,
        await _key(gw, "usage", "admin"): 403,  # the scope alone grants nothing
    }
    for secret, status in cases.items():
        other = await _call(gw, secret, "GET", "/v1/usage?tenant=t2")
        assert other.status_code == status, other.text
        every = await _call(gw, secret, "GET", "/v1/usage")
        assert every.json()["tenant"] == ("all" if status == 200 else "t1")


def _token_gateway(tmp_path: Path, **issuer: Any) -> Gateway:
    gw = memory_gateway(REGISTRY)
    jwks = write_jwks(tmp_path / "jwks.json", ISSUER_KEY)
    config = OidcConfig.model_validate({"issuers": [issuer_config(jwks_file=str(jwks), **issuer)]})
    gw.authenticator = Authenticator(gw.store, tokens=TokenVerifier(config))
    return gw


async def test_a_token_is_a_principal_with_its_scopes_and_limits(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    gw = _token_gateway(
        tmp_path, claims={"scopes": "scp", "limits": {"rpm": "rpm"}}, limits={"tpm": 100_000}
    )
    started = time.time()
    token = ISSUER_KEY.sign(claims(scp=["chat"], rpm=2))
    answered = await _call(gw, token, "POST", CHAT, chat_body("tiny"))
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-ratelimit-limit-requests"] == "2"
    [record] = await ledger(gw, started)
    assert record.key_id.startswith("jwt_") and record.tenant == "acme"
    _refused_for_scope(await _call(gw, token, "GET", "/v1/models"), "models")
    assert (await _call(gw, token, "POST", CHAT, chat_body("tiny"))).status_code == 200
    limited = await _call(gw, token, "POST", CHAT, chat_body("tiny"))
    assert limited.status_code == 429  # the rpm claim, counted per issuer and subject
    expired = await _call(
        gw, ISSUER_KEY.sign(claims(exp=int(time.time()) - 100)), "GET", "/v1/models"
    )
    assert expired.status_code == 401
    assert expired.json()["error"] == {
        "message": "Invalid bearer token: it has expired ('exp'). Get a fresh token.",
        "type": "authentication_error",
        "param": None,
        "code": "expired_token",
    }


async def test_keys_work_as_before_beside_tokens(tmp_path: Path) -> None:
    gw = _token_gateway(tmp_path)
    assert (await _call(gw, await _key(gw), "GET", "/v1/models")).status_code == 200
    assert (await _call(gw, ISSUER_KEY.sign(claims()), "GET", "/v1/models")).status_code == 200
    wrong = await _call(gw, ISSUER_KEY.sign(claims(aud="elsewhere")), "GET", "/v1/models")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "wrong_audience"


def test_keys_create_refuses_an_unknown_scope(
    usage_error: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error("keys", "create", "--name", "x", "--scopes", "chat,chats,admn")
    assert "unknown scope 'chats', 'admn'" in err and ", ".join(SCOPE_NAMES) in err
    assert main(["keys", "create", "--name", "x", "--scopes", "chat,usage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scopes"] == ["chat", "usage"]


@pytest.fixture
def authorizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The authorizer module imported afresh, as a Lambda instance's init runs it."""
    write_jwks(tmp_path / "jwks.json", ISSUER_KEY)
    config = {"issuers": [issuer_config(jwks_file=str(tmp_path / "jwks.json"))]}
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))
    monkeypatch.setenv("EDGEROUTE_OIDC_CONFIG", json.dumps(config))
    monkeypatch.setenv("EDGEROUTE_REGISTRY", str(tmp_path / "unused.yaml"))
    monkeypatch.delitem(sys.modules, "edgeroute.handlers.authorizer", raising=False)
    return importlib.import_module("edgeroute.handlers.authorizer")


def _event(authorization: str, resource: str = "/v1/{proxy+}") -> dict[str, Any]:
    """A REST API REQUEST authorizer event (the parts the authorizer reads)."""
    arn = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/dev/POST/v1/x"
    return {
        "type": "REQUEST",
        "methodArn": arn,
        "resource": resource,
        "httpMethod": "POST",
        "headers": {"Authorization": authorization},
        "requestContext": {"resourcePath": resource, "identity": {"sourceIp": "203.0.113.10"}},
    }


def _effect(answer: dict[str, Any]) -> str:
    [statement] = answer["policyDocument"]["Statement"]
    return str(statement["Effect"])


def test_the_authorizer_applies_the_same_token_and_scope_rules(
    authorizer: ModuleType, tmp_path: Path
) -> None:
    secret, record = mint_key("k", tenant="t1", policy=KeyPolicy(scopes=("embeddings",)))

    async def put() -> None:
        store = SQLiteStore(tmp_path / "edgeroute.db")
        await store.put_key(record)
        await store.close()

    asyncio.run(put())
    handler = authorizer.handler
    allowed = handler(_event(f"Bearer {secret}"), None)
    assert _effect(allowed) == "Allow"
    assert allowed["context"] == {"key_id": record.key_id, "tenant": "t1", "scopes": "embeddings"}
    assert _effect(handler(_event(f"Bearer {secret}", "/v1/embeddings"), None)) == "Allow"
    refused = handler(_event(f"Bearer {secret}", "/v1/chat/completions"), None)
    assert _effect(refused) == "Deny"
    assert refused["context"]["code"] == "insufficient_scope"
    token = ISSUER_KEY.sign(claims())
    by_token = handler(_event(f"Bearer {token}", "/v1/chat/completions"), None)
    assert _effect(by_token) == "Allow" and by_token["context"]["key_id"].startswith("jwt_")
    assert by_token["context"]["tenant"] == "acme"
    expired = ISSUER_KEY.sign(claims(exp=int(time.time()) - 100))
    assert _effect(handler(_event(f"Bearer {expired}"), None)) == "Deny"
    forged = SigningKey("k1").sign(claims())  # the issuer's kid, another key
    assert _effect(handler(_event(f"Bearer {forged}"), None)) == "Deny"


def test_the_limits_a_token_maps_are_key_limits() -> None:
    # The claim names of an issuer's limits are exactly the key limits one can set.
    from edgeroute.config.oidc import LimitClaims, LimitValues

    names = set(KeyLimits.__dataclass_fields__) - {"budget_usd_micros"} | {"budget_usd"}
    assert set(LimitValues.model_fields) == set(LimitClaims.model_fields) == names
