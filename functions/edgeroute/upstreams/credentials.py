"""Resolve an upstream credential from where the registry says it lives.

Environment variables are read on each call (cheap); secrets come from Secrets
Manager or SSM Parameter Store through Powertools Parameters, which caches them.
"""

from __future__ import annotations

import os

from edgeroute.config.registry import Credential
from edgeroute.errors import UpstreamError

_SECRET_MAX_AGE_S = 300


def resolve(credential: Credential | None) -> dict[str, str]:
    """The headers that authenticate edgeroute to an upstream (empty when none is set)."""
    if credential is None:
        return {}
    value: str | None = None
    if credential.env:
        value = os.environ.get(credential.env)
        if not value and credential.required:
            raise UpstreamError(
                f"The upstream credential variable {credential.env} is not set. "
                "An operator must set it where edgeroute runs.",
                code="upstream_credential_missing",
            )
    elif credential.secret:
        value = _secret(credential.secret)
    if not value:
        return {}
    return {credential.header: f"{credential.scheme} {value}".strip()}


def _secret(name: str) -> str:
    """A secret from Secrets Manager, or SSM when the name is a /path; cached 5 minutes."""
    from aws_lambda_powertools.utilities import parameters

    try:
        if name.startswith("/"):
            return str(parameters.get_parameter(name, decrypt=True, max_age=_SECRET_MAX_AGE_S))
        return str(parameters.get_secret(name, max_age=_SECRET_MAX_AGE_S))
    except Exception as exc:  # missing secret, AccessDenied, throttling: not the caller's fault
        raise UpstreamError(
            f"The upstream credential '{name}' could not be read ({type(exc).__name__}). "
            "An operator must check the secret and the function's permission to read it.",
            code="upstream_credential_missing",
        ) from exc
