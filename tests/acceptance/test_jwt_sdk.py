"""JWT bearer tokens end to end: `edgeroute serve` trusts an OIDC issuer whose JWKS a real
HTTP server on 127.0.0.1 serves, and the official openai SDK calls it with a token as
its api_key. Scopes, expiry, audience, key rotation and an issuer that is down are seen
as the SDK's callers see them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import GatewayProcess, free_port
from tests.support.oidc_issuer import JwksServer, SigningKey, claims, issuer_config
from tests.support.openai_sdk import error_field, user_says

FIRST = SigningKey("2025-01")
NEXT = SigningKey("2025-02", "ES256")
DOWN_ISSUER = "https://down.example.test/"


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer(FIRST) as server:
        yield server


@pytest.fixture(scope="module")
def served(
    fault_upstream: FaultUpstream, jwks_server: JwksServer, workdir: Path
) -> Iterator[GatewayProcess]:
    folder = workdir / "jwt"
    folder.mkdir()
    registry = folder / "models.yaml"
    registry.write_text(
        yaml.safe_dump({"models": [fault_model("instant", fault_upstream.url, "instant")]})
    )
    mapping = {"scopes": "scope", "scope_prefix": "edgeroute/", "limits": {"rpm": "rpm"}}
    oidc = folder / "oidc.yaml"
    oidc.write_text(
        yaml.safe_dump(
            {
                "issuers": [
                    issuer_config(jwks_url=jwks_server.url, claims=mapping),
                    {
                        **issuer_config(jwks_url=f"http://127.0.0.1:{free_port()}/jwks"),
                        "issuer": DOWN_ISSUER,
                        "jwks_timeout_s": 1,
                    },
                ]
            }
        )
    )
    env = {
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(folder / "edgeroute.db"),
        "EDGEROUTE_OIDC_CONFIG": str(oidc),
    }
    with GatewayProcess(env, folder) as process:
        yield process


def _sdk(served: GatewayProcess, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=token, max_retries=0, timeout=30)


def _token(key: SigningKey = FIRST, **overrides: Any) -> str:
    scopes = "openid edgeroute/chat edgeroute/models edgeroute/usage"
    return key.sign(claims(**{"scope": scopes, **overrides}))


def test_the_sdk_calls_with_a_token_as_its_api_key(served: GatewayProcess) -> None:
    token = _token(sub="alice")
    client = _sdk(served, token)
    answer = client.chat.completions.create(model="instant", messages=user_says("hello"))
    assert answer.choices[0].message.content
    assert [m.id for m in client.models.list()] == ["instant"]
    usage = httpx.get(served.url + "/v1/usage", headers={"authorization": f"Bearer {token}"})
    assert usage.status_code == 200 and usage.json()["tenant"] == "acme"
    assert usage.json()["total"]["requests"] >= 1
    # API keys work beside tokens.
    key = str(served.create_key("beside-tokens")["api_key"])
    assert _sdk(served, key).models.list().data


def test_refusals_are_the_sdk_s_exceptions_with_a_code(served: GatewayProcess) -> None:
    now = int(time.time())
    cases: list[tuple[str, type[openai.APIStatusError], str]] = [
        (_token(exp=now - 120), openai.AuthenticationError, "expired_token"),
        (_token(aud="another-api"), openai.AuthenticationError, "wrong_audience"),
        (_token(iss="https://evil.test/"), openai.AuthenticationError, "unknown_issuer"),
        (
            SigningKey(FIRST.kid).sign(claims(scope="edgeroute/chat")),
            openai.AuthenticationError,
            "invalid_token",
        ),
        (_token(scope="edgeroute/models"), openai.PermissionDeniedError, "insufficient_scope"),
        (_token(scope="openid"), openai.PermissionDeniedError, "insufficient_scope"),
    ]
    for token, error, code in cases:
        with pytest.raises(error) as refused:
            _sdk(served, token).chat.completions.create(model="instant", messages=user_says("hi"))
        assert error_field(refused.value, "code") == code, refused.value
        assert token not in refused.value.response.text
        assert token.split(".")[1] not in refused.value.response.text


def test_a_rate_limit_claim_limits_the_subject(served: GatewayProcess) -> None:
    token = _token(sub="bob", rpm=1)
    client = _sdk(served, token)
    client.chat.completions.create(model="instant", messages=user_says("one"))
    with pytest.raises(openai.RateLimitError):
        # A new token for the same subject shares the subject's counter.
        _sdk(served, _token(sub="bob", rpm=1, jti="x")).chat.completions.create(
            model="instant", messages=user_says("two")
        )


def test_the_issuer_rotates_its_key(served: GatewayProcess, jwks_server: JwksServer) -> None:
    _sdk(served, _token()).models.list()
    before = jwks_server.fetches
    jwks_server.keys = [FIRST, NEXT]
    time.sleep(1.2)  # the issuer's jwks_refresh_min_s
    assert _sdk(served, _token(NEXT)).models.list().data
    assert jwks_server.fetches == before + 1
    for n in range(10):  # made-up key ids right after: no fetch each
        with pytest.raises(openai.AuthenticationError):
            _sdk(served, _token(SigningKey(f"made-up-{n}", "ES256"))).models.list()
    assert jwks_server.fetches == before + 1


def test_an_issuer_whose_keys_are_down_is_a_503_not_a_hang(served: GatewayProcess) -> None:
    token = FIRST.sign(claims(iss=DOWN_ISSUER))
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as down:
        _sdk(served, token).models.list()
    assert time.monotonic() - started < 5
    assert down.value.status_code == 503
    assert error_field(down.value, "code") == "jwks_unavailable"
    assert "127.0.0.1" not in down.value.response.text
