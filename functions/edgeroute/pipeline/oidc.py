"""Verify a JWT bearer token from a configured OIDC issuer and turn it into a principal.

A token is trusted only when its issuer is configured, its header's algorithm is on
that issuer's allow-list, its ``kid`` names a key the issuer publishes (PyJWKClient:
the key set cached for ``jwks_cache_s``; an unknown ``kid`` refetches it, at most once
per ``jwks_refresh_min_s``, so a rotation is picked up and made-up ids cost no fetches),
its signature holds under that key, and ``exp``/``nbf``/``iat``, ``aud`` and ``iss``
check out within the issuer's leeway. Header fields that point at other keys (``jku``,
``x5u``, ``jwk``) are never read. The principal is an ``ApiKey`` (id ``jwt_`` + a hash of
issuer and subject) so quotas, the ledger and usage treat it like any key. Verifying may
fetch keys over the network: callers on an event loop run it on a thread.

Refusals never repeat the token or values taken from it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidSubjectError,
    MissingRequiredClaimError,
    PyJWKClientConnectionError,
    PyJWKClientError,
    PyJWKSetError,
    PyJWTError,
)

from edgeroute.config.loading import read_text
from edgeroute.config.oidc import VARIABLE, Issuer, OidcConfig
from edgeroute.errors import (
    AuthenticationFailed,
    ConfigError,
    PermissionDenied,
    TokenKeysUnavailable,
)
from edgeroute.pipeline.scopes import SCOPE_NAMES
from edgeroute.store.base import ApiKey, KeyLimits, KeyPolicy
from edgeroute.store.keys import TOKEN_KEY_PREFIX

MAX_TOKEN_CHARS = 16_384
_TENANT = re.compile(r"[A-Za-z0-9._:@/-]{1,128}")
_REQUIRED = ["exp", "iss", "aud", "sub"]


def _invalid(problem: str, code: str = "invalid_token") -> AuthenticationFailed:
    return AuthenticationFailed(f"Invalid bearer token: {problem}", code=code)


class _FileJWKClient(PyJWKClient):
    """PyJWKClient's caching and unknown-``kid`` refresh over a JWKS file (or S3 object)
    that the operator replaces to rotate keys."""

    def __init__(self, location: str, **options: Any) -> None:
        super().__init__("https://jwks-file.invalid/", **options)  # the URL is never fetched
        self.location = location

    def fetch_data(self) -> Any:
        try:
            data = self._as_jwk_set_payload(
                json.loads(read_text(self.location, "JWKS file", VARIABLE))
            )
        except (ConfigError, ValueError, PyJWKClientError) as exc:
            raise PyJWKClientConnectionError(f"{self.location}: {exc}") from exc
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(data)
        self._last_successful_fetch = time.monotonic()
        return data


def _key_client(issuer: Issuer) -> PyJWKClient:
    options: dict[str, Any] = {
        "cache_jwk_set": True,
        "lifespan": issuer.jwks_cache_s,
        "timeout": issuer.jwks_timeout_s,
        "cooldown_duration": issuer.jwks_refresh_min_s,
    }
    if issuer.jwks_file is not None:
        return _FileJWKClient(issuer.jwks_file, **options)
    assert issuer.jwks_url is not None  # the config holds exactly one source
    return PyJWKClient(issuer.jwks_url, **options)


@dataclass(frozen=True)
class _Trusted:
    config: Issuer
    keys: PyJWKClient


class TokenVerifier:
    """The configured issuers, each with its cached key set."""

    def __init__(self, config: OidcConfig) -> None:
        self._issuers = {i.issuer: _Trusted(i, _key_client(i)) for i in config.issuers}

    def verify(self, token: str) -> ApiKey:
        """The token's principal, or a 401 (``invalid_token``, ``expired_token``,
        ``unknown_issuer``, ``wrong_audience``), a 403 (no edgeroute scope) or a 503
        (the issuer's keys could not be fetched)."""
        if len(token) > MAX_TOKEN_CHARS:
            raise _invalid(f"longer than {MAX_TOKEN_CHARS} characters.")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except PyJWTError:
            raise _invalid("not a well-formed JWT (header.payload.signature).") from None
        iss = unverified.get("iss")
        trusted = self._issuers.get(iss) if isinstance(iss, str) else None
        if trusted is None:
            raise _invalid(
                "its issuer ('iss') is not one this gateway trusts. Use a token from a "
                "configured OIDC issuer, or an edgeroute API key.",
                code="unknown_issuer",
            )
        config = trusted.config
        if header.get("alg") not in config.algorithms:
            raise _invalid(
                f"it is signed with an algorithm its issuer may not use here (allowed: "
                f"{', '.join(config.algorithms)}). Ask the issuer for a token signed with one."
            )
        claims = self._checked_claims(token, trusted, header.get("kid"))
        return principal_from_claims(config, claims)

    def _signing_key(self, trusted: _Trusted, kid: Any) -> PyJWK:
        if not isinstance(kid, str) or not kid:
            raise _invalid("its header has no key id ('kid'). Ask the issuer for a token with one.")
        try:
            return trusted.keys.get_signing_key(kid)
        except (PyJWKClientConnectionError, PyJWKSetError) as exc:
            config = trusted.config
            source = config.jwks_url or config.jwks_file
            raise TokenKeysUnavailable(f"JWKS {source} of {config.issuer}: {exc}") from exc
        except PyJWKClientError:
            raise _invalid(
                "it is signed with a key its issuer does not publish (unknown 'kid'). "
                "Get a fresh token."
            ) from None

    def _checked_claims(self, token: str, trusted: _Trusted, kid: Any) -> dict[str, Any]:
        config = trusted.config
        key = self._signing_key(trusted, kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(config.algorithms),
                audience=list(config.audience),
                issuer=config.issuer,
                leeway=config.leeway_s,
                options={"require": _REQUIRED},
            )
        except ExpiredSignatureError:
            raise _invalid("it has expired ('exp'). Get a fresh token.", "expired_token") from None
        except ImmatureSignatureError:
            raise _invalid(
                "it is not valid yet ('nbf'). Check the clock of the machine that made it.",
                "token_not_yet_valid",
            ) from None
        except InvalidIssuedAtError:
            raise _invalid(
                "it was issued in the future ('iat'). Check the issuer's clock."
            ) from None
        except InvalidAudienceError:
            raise _invalid(
                f"its audience ('aud') is not {' or '.join(config.audience)}. Ask the issuer "
                "for a token meant for this gateway.",
                "wrong_audience",
            ) from None
        except InvalidIssuerError:
            raise _invalid("its issuer ('iss') does not match.", "unknown_issuer") from None
        except InvalidSubjectError:
            raise _invalid("its 'sub' claim is not a string. Ask the issuer to fix it.") from None
        except MissingRequiredClaimError as exc:
            raise _invalid(f"it has no '{exc.claim}' claim. Ask the issuer to add it.") from None
        except PyJWTError:
            raise _invalid(
                "its signature does not verify with its issuer's key. Get a fresh token."
            ) from None
        return claims


def _values(claim: Any) -> list[str]:
    """A claim read as names: a list of strings, or one string of names split on spaces
    (and commas)."""
    if isinstance(claim, str):
        return [v for v in re.split(r"[\s,]+", claim) if v]
    if isinstance(claim, list) and all(isinstance(v, str) for v in claim):
        return list(claim)
    raise ValueError


def _mapped(claims: dict[str, Any], name: str) -> list[str]:
    try:
        return _values(claims[name])
    except (KeyError, ValueError):
        raise _invalid(
            f"its '{name}' claim is missing or not a list of names. Ask the issuer to add it."
        ) from None


def _scopes(config: Issuer, claims: dict[str, Any]) -> tuple[str, ...]:
    mapping = config.claims
    if mapping.scopes is None:
        return ()
    prefix = mapping.scope_prefix
    held = [v.removeprefix(prefix) for v in _mapped(claims, mapping.scopes) if v.startswith(prefix)]
    scopes = tuple(dict.fromkeys(s for s in held if s in SCOPE_NAMES))
    if not scopes:
        raise PermissionDenied(
            f"The token's '{mapping.scopes}' claim grants none of edgeroute's scopes "
            f"({', '.join(prefix + s for s in SCOPE_NAMES)}). Ask the issuer for a token with "
            "the scope of the endpoint you call.",
            code="insufficient_scope",
        )
    return scopes


def _limits(config: Issuer, claims: dict[str, Any]) -> KeyLimits:
    values: dict[str, Any] = config.limits.model_dump()
    for field, claim in config.claims.limits.model_dump().items():
        if claim is None or claim not in claims:
            continue
        value = claims[claim]
        kinds = (int, float) if field == "budget_usd" else (int,)
        if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
            raise _invalid(f"its '{claim}' claim ({field}) must be a number above 0.")
        values[field] = value
    budget = values.pop("budget_usd")
    return KeyLimits(**values, budget_usd_micros=None if budget is None else round(budget * 1e6))


def _is_admin(config: Issuer, claims: dict[str, Any]) -> bool:
    rule = config.claims.admin
    if rule is None or rule.claim not in claims:
        return False
    try:
        return rule.value in _values(claims[rule.claim])
    except ValueError:
        return False


def principal_from_claims(config: Issuer, claims: dict[str, Any]) -> ApiKey:
    """The principal a verified token's claims describe, by the issuer's claim map."""
    mapping = config.claims
    tenant = claims.get(mapping.tenant)
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise _invalid(
            f"its '{mapping.tenant}' claim (the tenant) is missing or not 1-128 letters, "
            "digits or ._:@/- characters. Ask the issuer to add it."
        )
    subject = str(claims["sub"])
    digest = hashlib.sha256(f"{config.issuer}\n{subject}".encode()).hexdigest()
    return ApiKey(
        key_id=TOKEN_KEY_PREFIX + digest[:24],
        key_hash="",
        name=subject[:200],
        tenant=tenant,
        created_at=float(claims.get("iat") or 0),
        models=tuple(_mapped(claims, mapping.models)) if mapping.models else (),
        admin=_is_admin(config, claims),
        limits=_limits(config, claims),
        expires_at=float(claims["exp"]),
        policy=KeyPolicy(scopes=_scopes(config, claims)),
    )
