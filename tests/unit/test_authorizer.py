"""The REST API authorizer on the event API Gateway sends it (infra/events/
rest-api-authorizer.json, a REQUEST authorizer's event): a good key is an Allow over the
whole stage naming the key, a wrong or revoked one a Deny carrying the OpenAI error, and
no bearer credential the ``Unauthorized`` error API Gateway turns into its 401."""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edgeroute.handlers.policies import stage_arn
from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore

EVENT = json.loads(
    (
        Path(__file__).resolve().parents[2] / "infra" / "events" / "rest-api-authorizer.json"
    ).read_text()
)
STAGE = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/dev/*"


@pytest.fixture
def authorizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The authorizer module imported afresh on an empty SQLite store."""
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))
    monkeypatch.setenv("EDGEROUTE_REGISTRY", str(tmp_path / "unused.yaml"))
    monkeypatch.delenv("EDGEROUTE_OIDC_CONFIG", raising=False)
    monkeypatch.delitem(sys.modules, "edgeroute.handlers.authorizer", raising=False)
    return importlib.import_module("edgeroute.handlers.authorizer")


def _put_key(tmp_path: Path, name: str, *, revoked: bool = False) -> tuple[str, str]:
    secret, record = mint_key(name, tenant="acme")

    async def put() -> None:
        store = SQLiteStore(tmp_path / "edgeroute.db")
        await store.put_key(replace(record, revoked=revoked))
        await store.close()

    asyncio.run(put())
    return secret, record.key_id


def _event(authorization: str | None, header: str = "authorization") -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(EVENT)
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("authorization")
    if authorization is not None:
        event["headers"][header] = authorization
        event["multiValueHeaders"][header] = [authorization]
    return event


def _statement(answer: dict[str, Any]) -> dict[str, Any]:
    [statement] = answer["policyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    return dict(statement)


@pytest.mark.parametrize("header", ["authorization", "Authorization"])
def test_a_good_key_is_allowed_on_the_whole_stage(
    authorizer: ModuleType, tmp_path: Path, header: str
) -> None:
    secret, key_id = _put_key(tmp_path, "good")
    answer = authorizer.handler(_event(f"Bearer {secret}", header), None)
    assert _statement(answer) == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": STAGE,  # not only POST /v1/chat/completions: the answer is cached
    }
    assert answer["principalId"] == key_id
    assert answer["context"] == {"key_id": key_id, "tenant": "acme", "scopes": ""}


@pytest.mark.parametrize("kind", ["unknown", "revoked"])
def test_a_wrong_key_is_denied_with_the_openai_error(
    authorizer: ModuleType, tmp_path: Path, kind: str
) -> None:
    secret, _ = _put_key(tmp_path, "gone", revoked=True)
    if kind == "unknown":
        secret = "er-not-a-key-anyone-minted"
    answer = authorizer.handler(_event(f"Bearer {secret}"), None)
    assert _statement(answer)["Effect"] == "Deny"
    assert _statement(answer)["Resource"] == STAGE
    context = answer["context"]
    assert context["error_type"] == "authentication_error"
    assert context["code"] in {"invalid_api_key", "revoked_api_key"}
    assert context["message"] and '"' not in context["message"]  # JSON-safe for the template
    assert secret not in json.dumps(answer)  # a key never echoes back


@pytest.mark.parametrize("authorization", [None, "", "Basic eDp5", "Bearer  "])
def test_no_bearer_credential_is_api_gateways_401(
    authorizer: ModuleType, authorization: str | None
) -> None:
    # API Gateway answers 401 itself when the header is missing and caching is on; with
    # AuthorizerCacheTtl=0 (or a header that is no bearer credential) the authorizer runs.
    with pytest.raises(Exception) as raised:
        authorizer.handler(_event(authorization), None)
    assert str(raised.value) == "Unauthorized"  # exactly: any other message is a 500


def test_a_store_outage_is_not_a_cached_denial(
    authorizer: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(secret: str, address: str | None) -> None:
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(authorizer._authenticator, "authenticate", down)
    with pytest.raises(ConnectionError):  # API Gateway answers 500 and caches nothing
        authorizer.handler(_event("Bearer er-anything"), None)


def test_the_source_address_reaches_the_key_check(
    authorizer: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []

    async def record(secret: str, address: str | None) -> None:
        seen.append(address)
        raise ConnectionError("stop here")

    monkeypatch.setattr(authorizer._authenticator, "authenticate", record)
    with pytest.raises(ConnectionError):
        authorizer.handler(_event("Bearer er-anything"), None)
    assert seen == ["203.0.113.10"]  # requestContext.identity.sourceIp, for --ip-allow keys


ARN = "arn:aws:execute-api:eu-west-1:1:api1"


@pytest.mark.parametrize(
    ("method_arn", "stage"),
    [
        (f"{ARN}/prod/GET/v1/models/a/b", f"{ARN}/prod/*"),
        (f"{ARN}/dev/POST/", f"{ARN}/dev/*"),
    ],
)
def test_stage_arn(method_arn: str, stage: str) -> None:
    assert stage_arn(method_arn) == stage


def test_a_key_in_x_api_key_is_checked_like_a_bearer_key(
    authorizer: ModuleType, tmp_path: Path
) -> None:
    """The Messages routes' authorizer reads the header Anthropic's SDKs send."""
    secret, key_id = _put_key(tmp_path, "claude-client")
    event = _event(secret, "x-api-key")
    event["resource"] = "/v1/messages"
    answer = authorizer.handler(event, None)
    assert _statement(answer)["Effect"] == "Allow"
    assert answer["principalId"] == key_id
    denied = authorizer.handler(_event("er-not-a-key-anyone-minted", "x-api-key"), None)
    assert _statement(denied)["Effect"] == "Deny"
