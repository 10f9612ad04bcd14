"""The OIDC issuers whose JWTs edgeroute accepts as bearer tokens, and how their claims map.

``EDGEROUTE_OIDC_CONFIG`` holds the JSON itself, or names a YAML/JSON file or an
``s3://`` object. Everything that makes a token trustworthy is fixed here and checked at
load: an issuer and audience to match, an allow-list of public-key algorithms (``none``
and the HMAC family can never be listed: a JWKS holds public keys, and an HMAC "signed"
with a public key is the key-confusion attack), keys from a JWKS URL (https, or http
on the loopback interface) or file, and a clock skew of at most ``MAX_LEEWAY_S``.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from edgeroute.config.loading import StrictModel, parse_yaml, read_text, validated
from edgeroute.errors import ConfigError

VARIABLE = "EDGEROUTE_OIDC_CONFIG"
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
MAX_LEEWAY_S = 300.0
_LOOPBACK_NAMES = ("localhost",)


class LimitValues(StrictModel):
    """Quotas for every token of an issuer (a limit claim, when present, wins)."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    budget_usd: float | None = Field(default=None, gt=0)


class LimitClaims(StrictModel):
    """The claim that carries each quota, if the issuer puts one in its tokens."""

    rpm: str | None = None
    tpm: str | None = None
    max_concurrent: str | None = None
    tokens_per_day: str | None = None
    budget_usd: str | None = None


class AdminClaim(StrictModel):
    """A token is an admin's only when ``claim`` equals ``value`` or (a list, or a
    space-separated string) contains it."""

    claim: str = Field(min_length=1)
    value: str = Field(min_length=1)


class ClaimMap(StrictModel):
    """Which claims carry the principal's tenant, models, scopes and limits. A claim
    named here (other than a limit's) must be in every token; one left out is not read."""

    tenant: str = Field(default="tenant", min_length=1)
    models: str | None = None  # absent: every model in the registry
    scopes: str | None = None  # absent: every endpoint but admin ones
    scope_prefix: str = ""  # e.g. "edgeroute/" for Cognito's "edgeroute/chat"
    limits: LimitClaims = LimitClaims()
    admin: AdminClaim | None = None  # absent: no token is an admin's


class Issuer(StrictModel):
    issuer: str = Field(min_length=1)
    audience: tuple[str, ...] = Field(min_length=1)
    algorithms: tuple[str, ...] = Field(min_length=1)
    jwks_url: str | None = None
    jwks_file: str | None = None  # a path or s3:// URI, re-read when an unknown key id shows
    jwks_timeout_s: float = Field(default=3.0, gt=0, le=10)
    jwks_cache_s: float = Field(default=300.0, ge=1, le=86_400)
    # The least time between two fetches for unknown key ids: a stream of tokens with
    # made-up ``kid``s cannot turn into a stream of JWKS requests.
    jwks_refresh_min_s: float = Field(default=30.0, ge=1, le=3600)
    leeway_s: float = Field(default=30.0, ge=0, le=MAX_LEEWAY_S)
    claims: ClaimMap = ClaimMap()
    limits: LimitValues = LimitValues()

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("algorithms")
    @classmethod
    def _public_key_algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if a not in ALGORITHMS]
        if bad:
            raise ValueError(
                f"{', '.join(repr(a) for a in bad)} cannot be allowed: tokens are verified "
                f"with the issuer's public keys (never 'none' or HMAC); choose from "
                f"{', '.join(ALGORITHMS)}"
            )
        return value

    @field_validator("jwks_url")
    @classmethod
    def _https_or_loopback(cls, value: str | None) -> str | None:
        if value is None:
            return value
        url = urlparse(value)
        if url.scheme == "https" or (url.scheme == "http" and _loopback(url.hostname)):
            return value
        raise ValueError("must be an https:// URL (http:// only on 127.0.0.1 or localhost)")

    @model_validator(mode="after")
    def _one_key_source(self) -> Issuer:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of jwks_url and jwks_file")
        return self


def _loopback(host: str | None) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class OidcConfig(StrictModel):
    issuers: tuple[Issuer, ...] = Field(min_length=1)

    @field_validator("issuers")
    @classmethod
    def _distinct(cls, value: tuple[Issuer, ...]) -> tuple[Issuer, ...]:
        names = [i.issuer for i in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each issuer once: {', '.join(twice)} is listed more than once")
        return value


def load_oidc(value: str) -> OidcConfig | None:
    """The issuers from ``EDGEROUTE_OIDC_CONFIG`` (JSON text, a file or an s3:// URI);
    ``None`` when it is empty (bearer tokens are then refused)."""
    value = value.strip()
    if not value:
        return None
    if value.startswith("{"):
        source = VARIABLE
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{VARIABLE}: not valid JSON: {exc}") from exc
    else:
        source = value
        data = parse_yaml(read_text(value, "OIDC issuer file", VARIABLE), value)
    return validated(OidcConfig, data, source, "issuers")
