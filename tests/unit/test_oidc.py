"""JWT bearer tokens from OIDC issuers (EDGEROUTE_OIDC_CONFIG): what is verified, what
is refused and with which code, how claims become the principal, and how the issuer's
keys are fetched (cached, refreshed once for an unknown kid at a bounded rate, a 503
when they cannot be had). Keys are made here; tokens are signed with PyJWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from edgeroute.config.oidc import OidcConfig, load_oidc
from edgeroute.errors import (
    AuthenticationFailed,
    ConfigError,
    PermissionDenied,
    TokenKeysUnavailable,
)
from edgeroute.pipeline.authenticate import Authenticator, looks_like_jwt
from edgeroute.pipeline.oidc import TokenVerifier
from edgeroute.settings import Settings
from edgeroute.store.base import KeyLimits
from edgeroute.store.sqlite import SQLiteStore
from tests.support.gateway import free_port
from tests.support.oidc_issuer import (
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    issuer_config,
    write_jwks,
)

RSA = SigningKey("rsa-1")
EC = SigningKey("ec-1", "ES256")


def _verifier(tmp_path: Path, *keys: SigningKey, **extra: Any) -> TokenVerifier:
    jwks = write_jwks(tmp_path / "jwks.json", *(keys or (RSA, EC)))
    config = OidcConfig.model_validate({"issuers": [issuer_config(jwks_file=str(jwks), **extra)]})
    return TokenVerifier(config)


def _refused(verifier: TokenVerifier, token: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as refused:
        verifier.verify(token)
    assert refused.value.status_code == 401
    assert token not in refused.value.message
    assert all(part not in refused.value.message for part in token.split(".") if len(part) > 8)
    return refused.value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token made by hand: ``alg: none`` (no signature) or an HMAC over ``secret``."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def test_good_rsa_and_ec_tokens_become_principals(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path)
    for key in (RSA, EC):
        good = claims()
        principal = verifier.verify(key.sign(good))
        assert principal.key_id.startswith("jwt_") and len(principal.key_id) == 28
        assert principal.tenant == "acme"
        assert principal.expires_at == good["exp"]
        assert principal.models == () and principal.policy.scopes == ()
        assert not principal.admin and principal.limits == KeyLimits()
    # One subject of one issuer is one principal, whatever token it holds.
    assert verifier.verify(RSA.sign(claims())).key_id == verifier.verify(EC.sign(claims())).key_id
    assert verifier.verify(RSA.sign(claims(sub="user-2"))).key_id != principal.key_id


def test_expiry_and_not_before_hold_within_the_leeway_only(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path, leeway_s=30)
    now = int(time.time())
    assert verifier.verify(RSA.sign(claims(exp=now - 10))).tenant == "acme"  # within skew
    assert _refused(verifier, RSA.sign(claims(exp=now - 60))).code == "expired_token"
    assert verifier.verify(RSA.sign(claims(nbf=now + 10))).tenant == "acme"
    late = _refused(verifier, RSA.sign(claims(nbf=now + 120)))
    assert late.code == "token_not_yet_valid" and "'nbf'" in late.message
    strict = _verifier(tmp_path, leeway_s=0)
    assert _refused(strict, RSA.sign(claims(exp=now - 2))).code == "expired_token"


def test_audience_issuer_and_required_claims(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path)
    wrong = _refused(verifier, RSA.sign(claims(aud="someone-else")))
    assert wrong.code == "wrong_audience" and "edgeroute" in wrong.message
    assert _refused(verifier, RSA.sign(claims(iss="https://evil.test/"))).code == "unknown_issuer"
    assert _refused(verifier, RSA.sign(claims(iss=None))).code == "unknown_issuer"
    for claim in ("exp", "sub", "aud"):
        missing = _refused(verifier, RSA.sign(claims(**{claim: None})))
        assert missing.code == "invalid_token" and f"'{claim}'" in missing.message
    assert "'sub' claim" in _refused(verifier, RSA.sign(claims(sub=42))).message
    tenantless = _refused(verifier, RSA.sign(claims(tenant=None)))
    assert tenantless.code == "invalid_token" and "'tenant' claim" in tenantless.message
    assert _refused(verifier, RSA.sign(claims(tenant="a b"))).code == "invalid_token"


def test_unsigned_and_key_confusion_tokens_are_refused(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path)
    unsigned = _forged({"alg": "none", "typ": "JWT", "kid": RSA.kid}, claims(), None)
    assert looks_like_jwt(unsigned)
    assert "algorithm" in _refused(verifier, unsigned).message
    # HS256 "signed" with the issuer's public key, which anyone can fetch.
    public_pem = RSA.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = _forged({"alg": "HS256", "typ": "JWT", "kid": RSA.kid}, claims(), public_pem)
    assert _refused(verifier, confused).code == "invalid_token"
    # An ES256 token naming the RSA key: the key's own algorithm decides, not the header.
    assert _refused(verifier, EC.sign(claims(), kid=RSA.kid)).code == "invalid_token"


def test_a_tampered_token_or_a_foreign_key_is_refused(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path)
    header, _, signature = RSA.sign(claims()).split(".")
    richer = _b64(json.dumps(claims(tenant="other-tenant")).encode())
    assert "signature" in _refused(verifier, f"{header}.{richer}.{signature}").message
    impostor = SigningKey(RSA.kid)  # same kid, another key
    assert _refused(verifier, impostor.sign(claims())).code == "invalid_token"
    unknown = _refused(verifier, SigningKey("nobody").sign(claims()))
    assert "unknown 'kid'" in unknown.message
    assert _refused(verifier, "not-base64-json.at-all.really").code == "invalid_token"


def test_an_unknown_kid_refetches_the_file_at_a_bounded_rate(tmp_path: Path) -> None:
    old, new = SigningKey("2024"), SigningKey("2025")
    verifier = _verifier(tmp_path, old, jwks_refresh_min_s=1)
    assert verifier.verify(old.sign(claims())).tenant == "acme"
    write_jwks(tmp_path / "jwks.json", new)  # the issuer rotates
    # Fetched less than a second ago: no refetch yet, so the new key is not known.
    assert "unknown 'kid'" in _refused(verifier, new.sign(claims())).message
    time.sleep(1.1)
    assert verifier.verify(new.sign(claims())).tenant == "acme"
    assert _refused(verifier, old.sign(claims())).code == "invalid_token"  # retired


def test_an_unknown_kid_refetches_the_url_once_and_made_up_kids_do_not_flood_it() -> None:
    old, new = SigningKey("a"), SigningKey("b")
    with JwksServer(old) as server:
        config = {"issuers": [issuer_config(jwks_url=server.url, jwks_refresh_min_s=1)]}
        verifier = TokenVerifier(OidcConfig.model_validate(config))
        for _ in range(3):
            verifier.verify(old.sign(claims()))
        assert server.fetches == 1  # cached
        for n in range(20):
            _refused(verifier, SigningKey(f"made-up-{n}", "ES256").sign(claims()))
        assert server.fetches == 1  # within the refresh interval: no fetch at all
        server.keys = [old, new]
        time.sleep(1.1)
        assert verifier.verify(new.sign(claims())).tenant == "acme"
        assert server.fetches == 2


def test_keys_that_cannot_be_fetched_are_a_503_not_a_401_or_a_hang(tmp_path: Path) -> None:
    token = RSA.sign(claims())
    closed = {"issuers": [issuer_config(jwks_url=f"http://127.0.0.1:{free_port()}/jwks")]}
    with pytest.raises(TokenKeysUnavailable) as down:
        TokenVerifier(OidcConfig.model_validate(closed)).verify(token)
    assert down.value.status_code == 503 and down.value.code == "jwks_unavailable"
    assert "127.0.0.1" not in down.value.message and "127.0.0.1" in str(down.value.detail)
    with JwksServer(RSA) as server:
        server.delay_s = 3
        slow = {"issuers": [issuer_config(jwks_url=server.url, jwks_timeout_s=0.3)]}
        started = time.monotonic()
        with pytest.raises(TokenKeysUnavailable):
            TokenVerifier(OidcConfig.model_validate(slow)).verify(token)
        assert time.monotonic() - started < 1.5
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    missing = {"issuers": [issuer_config(jwks_file=str(broken))]}
    with pytest.raises(TokenKeysUnavailable):
        TokenVerifier(OidcConfig.model_validate(missing)).verify(token)


def test_claims_map_to_models_scopes_limits_and_admin(tmp_path: Path) -> None:
    mapping = {
        "models": "edgeroute_models",
        "scopes": "scope",
        "scope_prefix": "edgeroute/",
        "limits": {"tpm": "edgeroute_tpm", "budget_usd": "edgeroute_budget"},
        "admin": {"claim": "groups", "value": "edgeroute-admins"},
    }
    verifier = _verifier(tmp_path, claims=mapping, limits={"rpm": 60, "tpm": 1000})
    token = RSA.sign(
        claims(
            edgeroute_models=["small", "large"],
            scope="openid edgeroute/chat edgeroute/models profile edgeroute/unheard-of",
            edgeroute_tpm=5000,
            edgeroute_budget=2.5,
            groups=["staff", "edgeroute-admins"],
        )
    )
    principal = verifier.verify(token)
    assert principal.models == ("small", "large")
    assert principal.policy.scopes == ("chat", "models")
    assert principal.limits == KeyLimits(rpm=60, tpm=5000, budget_usd_micros=2_500_000)
    assert principal.admin
    # The fixed limits hold when the claim is absent; an "admin" scope alone grants nothing.
    plain = verifier.verify(
        RSA.sign(claims(edgeroute_models="small", scope=["edgeroute/admin", "edgeroute/usage"]))
    )
    assert plain.limits == KeyLimits(rpm=60, tpm=1000) and not plain.admin
    assert plain.models == ("small",) and plain.policy.scopes == ("admin", "usage")
    # A token whose scopes name no edgeroute scope is refused, not given every endpoint.
    with pytest.raises(PermissionDenied) as unscoped:
        verifier.verify(RSA.sign(claims(edgeroute_models="small", scope="openid profile")))
    assert (
        unscoped.value.code == "insufficient_scope" and "edgeroute/chat" in unscoped.value.message
    )
    assert "'scope' claim" in _refused(verifier, RSA.sign(claims(edgeroute_models="x"))).message
    bad_limit = RSA.sign(claims(edgeroute_models="x", scope="edgeroute/chat", edgeroute_tpm="lots"))
    assert "'edgeroute_tpm' claim" in _refused(verifier, bad_limit).message


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"algorithms": ["none"]}, "'none' cannot be allowed"),
        ({"algorithms": ["RS256", "HS256"]}, "'HS256' cannot be allowed"),
        ({"leeway_s": 301}, "leeway_s"),
        ({"jwks_url": "http://login.example.test/jwks"}, "https://"),
        ({"jwks_url": "https://login.example.test/jwks"}, "exactly one of jwks_url and jwks_file"),
        ({"jwks_file": None}, "exactly one of jwks_url and jwks_file"),
        ({"audience": []}, "audience"),
        ({"claims": {"tenant": ""}}, "claims.tenant"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_issuer_config_names_the_field(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    entry = {**issuer_config(jwks_file=str(tmp_path / "jwks.json")), **change}
    with pytest.raises(ConfigError) as bad:
        load_oidc(json.dumps({"issuers": [entry]}))
    assert "EDGEROUTE_OIDC_CONFIG" in str(bad.value) and problem in str(bad.value)


def test_the_config_is_json_text_or_a_file(tmp_path: Path) -> None:
    entry = issuer_config(jwks_file=str(tmp_path / "jwks.json"))
    assert load_oidc("") is None
    inline = load_oidc(json.dumps({"issuers": [entry]}))
    file = tmp_path / "oidc.yaml"
    file.write_text(
        f"issuers:\n  - issuer: {ISSUER}\n    audience: [edgeroute]\n"
        f"    algorithms: [RS256]\n    jwks_file: {tmp_path / 'jwks.json'}\n"
    )
    from_file = load_oidc(str(file))
    assert inline is not None and from_file is not None
    assert inline.issuers[0].issuer == from_file.issuers[0].issuer == ISSUER
    with pytest.raises(ConfigError, match="not found"):
        load_oidc(str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_oidc("{oops")
    twice = json.dumps({"issuers": [entry, entry]})
    with pytest.raises(ConfigError, match="more than once"):
        load_oidc(twice)


async def test_the_authenticator_tells_tokens_from_keys(tmp_path: Path) -> None:
    store = SQLiteStore(":memory:")
    token = RSA.sign(claims())
    keys_only = Authenticator(store)
    with pytest.raises(AuthenticationFailed) as refused:
        await keys_only.authenticate(token)
    assert refused.value.code == "invalid_token" and "no OIDC issuer" in refused.value.message
    write_jwks(tmp_path / "jwks.json", RSA)
    config = json.dumps({"issuers": [issuer_config(jwks_file=str(tmp_path / "jwks.json"))]})
    settings = Settings(sqlite_path=":memory:", oidc_config=config)
    both = Authenticator.from_settings(store, settings)
    assert (await both.authenticate(token)).tenant == "acme"
    with pytest.raises(AuthenticationFailed) as expired:
        await both.authenticate(RSA.sign(claims(exp=int(time.time()) - 120)))
    assert expired.value.code == "expired_token"
    with pytest.raises(AuthenticationFailed, match="start with 'er-'"):
        await both.authenticate("not-a-key")
    await store.close()
