"""Resolve an upstream credential from where the registry says it lives.

Environment variables are read on each call (cheap); secrets come from Secrets
Manager or SSM Parameter Store through Powertools Parameters, which caches them.
A failure tells the caller only that the gateway's configuration is at fault; the
variable's or secret's name goes to the error's detail, for the server log.
"""

from __future__ import annotations

import os

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import UpstreamAuthFailed
from edgeroute.upstreams.base import upstream_for

_SECRET_MAX_AGE_S = 300


def resolve(model: ModelSpec) -> dict[str, str]:
    """The headers that authenticate edgeroute to the model's upstream (empty when none)."""
    credential = model.credential
    if credential is None:
        return {}
    value: str | None = None
    if credential.env:
        value = os.environ.get(credential.env)
        if not value and credential.required:
            raise _unreadable(
                model,
                f"the upstream credential variable {credential.env} is not set. "
                "An operator must set it where edgeroute runs.",
            )
    elif credential.secret:
        value = _secret(model, credential.secret)
    if not value:
        return {}
    return {credential.header: f"{credential.scheme} {value}".strip()}


def _unreadable(model: ModelSpec, detail: str) -> UpstreamAuthFailed:
    return UpstreamAuthFailed(
        f"{upstream_for(model)} cannot be called: edgeroute could not read its credential. "
        "This is the gateway's configuration, not your request: call another model or "
        "retry later.",
        code="upstream_credential_missing",
        detail=f"model '{model.name}': {detail}",
    )


def _secret(model: ModelSpec, name: str) -> str:
    """A secret from Secrets Manager, or SSM when the name is a /path; cached 5 minutes."""
    from aws_lambda_powertools.utilities import parameters

    try:
        if name.startswith("/"):
            return str(parameters.get_parameter(name, decrypt=True, max_age=_SECRET_MAX_AGE_S))
        return str(parameters.get_secret(name, max_age=_SECRET_MAX_AGE_S))
    except Exception as exc:  # missing secret, AccessDenied, throttling: not the caller's fault
        raise _unreadable(
            model,
            f"the upstream credential '{name}' could not be read ({type(exc).__name__}: {exc}). "
            "An operator must check the secret and the function's permission to read it.",
        ) from exc
