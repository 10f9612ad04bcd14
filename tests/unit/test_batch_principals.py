"""Who may create a batch: its lines run after the request ends, as a key the store
holds, so a principal that cannot be looked up then (an OIDC token's) or that batch
jobs refuse (an admin key) is refused at ``POST /v1/batches`` with the reason, rather
than getting a batch that fails every line later."""

from __future__ import annotations

from pathlib import Path

from tests.support.inprocess import memory_gateway
from tests.support.oidc_issuer import claims
from tests.unit.test_scopes import ISSUER_KEY, REGISTRY, _call, _key, _token_gateway

BATCH = {"input_file_id": "file-0", "endpoint": "/v1/chat/completions", "completion_window": "24h"}


async def test_a_token_cannot_create_a_batch_and_is_told_why(tmp_path: Path) -> None:
    gw = _token_gateway(tmp_path, claims={"scopes": "scp"})
    token = ISSUER_KEY.sign(claims(scp=["batch", "chat"]))
    assert (await _call(gw, token, "GET", "/v1/batches")).status_code == 200
    refused = await _call(gw, token, "POST", "/v1/batches", BATCH)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["type"] == "permission_error" and error["code"] == "batch_principal"
    assert "OIDC token" in error["message"] and "API key" in error["message"]
    assert "edgeroute keys create" in error["message"]
    # A key of the store gets as far as looking the file up.
    key = await _key(gw, "batch", "chat", tenant="acme")
    assert (await _call(gw, key, "POST", "/v1/batches", BATCH)).status_code == 404


async def test_an_admin_key_cannot_create_a_batch() -> None:
    gw = memory_gateway(REGISTRY)
    admin = await _key(gw, admin=True)
    refused = await _call(gw, admin, "POST", "/v1/batches", BATCH)
    assert refused.status_code == 403, refused.text
    assert "admin key" in refused.json()["error"]["message"]
