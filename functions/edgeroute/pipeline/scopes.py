"""Scopes: the endpoints a principal (an API key or a verified token) may call.

One home for the scope names and for which path needs which, read by the app's
authenticating dependency and by the Lambda authorizer alike. A principal with no scopes
may call every endpoint but acts as an admin only through its ``admin`` flag; a scoped
one may call only the endpoints its scopes name, and acts as an admin (reads other
tenants' usage) only with both the ``admin`` flag and the ``admin`` scope, so the scope
alone never grants anything.
"""

from __future__ import annotations

from enum import StrEnum

from edgeroute.errors import PermissionDenied
from edgeroute.store.base import ApiKey
from edgeroute.types import Kind


class Scope(StrEnum):
    CHAT = Kind.CHAT.value
    COMPLETIONS = Kind.COMPLETIONS.value
    EMBEDDINGS = Kind.EMBEDDINGS.value
    MODERATIONS = Kind.MODERATIONS.value
    CLASSIFY = "classify"
    ROUTE = "route"
    MODELS = "models"
    USAGE = "usage"
    RESPONSES = "responses"  # /v1/responses and its stored responses
    BATCH = "batch"  # /v1/files and /v1/batches; each line also needs its endpoint's scope
    ADMIN = "admin"  # other tenants' usage; needs the principal's admin flag as well

    @classmethod
    def for_kind(cls, kind: Kind) -> Scope:
        return cls(kind.value)


SCOPE_NAMES = tuple(s.value for s in Scope)

# The scope each authenticated route needs, by its path as the app declares it.
_BY_PATH: dict[str, Scope] = {
    **{kind.path: Scope.for_kind(kind) for kind in Kind},
    "/v1/classify": Scope.CLASSIFY,
    "/v1/route": Scope.ROUTE,
    "/v1/models": Scope.MODELS,
    "/v1/models/{model_id:path}": Scope.MODELS,
    "/v1/usage": Scope.USAGE,
    "/v1/responses": Scope.RESPONSES,
    "/v1/responses/{response_id}": Scope.RESPONSES,
    "/v1/responses/{response_id}/cancel": Scope.RESPONSES,
    "/v1/responses/{response_id}/input_items": Scope.RESPONSES,
    # Anthropic's Messages API is chat by another name: the same scope.
    "/v1/messages": Scope.CHAT,
    "/v1/messages/count_tokens": Scope.CHAT,
}
# Path prefixes whose every route needs one scope (the Files and Batches API).
_BY_PREFIX: dict[str, Scope] = {
    "/v1/responses/": Scope.RESPONSES,
    "/v1/models/": Scope.MODELS,
    "/v1/files": Scope.BATCH,
    "/v1/batches": Scope.BATCH,
}


def scope_for_path(path: str) -> Scope | None:
    """The scope a route needs: ``path`` as the app declares it (``/v1/models/{model_id:path}``)
    or as a caller sends it (``/v1/models/smollm2``); ``None`` for a path no scope names."""
    if path in _BY_PATH:
        return _BY_PATH[path]
    for prefix, scope in _BY_PREFIX.items():
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return scope
    return None


def parse_scopes(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``names`` checked against the scope names (duplicates dropped, order kept); a
    ValueError naming the unknown ones and the valid ones otherwise."""
    unknown = [n for n in names if n not in SCOPE_NAMES]
    if unknown:
        raise ValueError(
            f"unknown scope {', '.join(repr(n) for n in unknown)}: "
            f"choose from {', '.join(SCOPE_NAMES)}"
        )
    return tuple(dict.fromkeys(names))


def require(principal: ApiKey, needed: Scope | None, what: str) -> None:
    """A 403 ``insufficient_scope`` unless ``principal``'s scopes allow ``needed``
    (``None``: a call no scope names, which only an unscoped principal may make);
    ``what`` names the call (``POST /v1/chat/completions``) in the message."""
    held = principal.policy.scopes
    if not held or (needed is not None and needed.value in held):
        return
    if needed is None:
        message = (
            f"{what} is open only to credentials without scopes, and this one is limited "
            f"to {', '.join(held)}. Use a key created without --scopes."
        )
    else:
        message = (
            f"{what} needs the '{needed}' scope, and this credential has only "
            f"{', '.join(held)}. Use a key created with --scopes including {needed}, or a "
            "token that carries that scope."
        )
    raise PermissionDenied(
        message,
        code="insufficient_scope",
    )


def acts_as_admin(principal: ApiKey) -> bool:
    """Whether the principal may act across tenants: its admin flag, and, when it is
    scoped, the ``admin`` scope too."""
    held = principal.policy.scopes
    return principal.admin and (not held or Scope.ADMIN.value in held)
