"""The errors edgeroute answers with, each mapping to one HTTP status and OpenAI's error shape.

Every failure a caller can see is one of these; the API layer renders them as
``{"error": {"message", "type", "param", "code"}}`` so the official SDKs raise the
matching exception class (``BadRequestError``, ``AuthenticationError`` ...).

One class per answer: each fixes its status, type and default code, and an instance is
never changed after construction (a different answer is a different class).

The body holds only what the caller may read: never an upstream's URL or host, a
credential, a secret's name, an upstream's own error text or a stack trace. Those go in
``detail``, which only the server log sees (``log_detail``, under the request id).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("edgeroute.errors")


class EdgerouteError(Exception):
    """Base class: a caller-visible failure with a status code and an OpenAI error body."""

    status_code = 500
    error_type = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}
        self.detail = detail  # for the server log only; never in the body

    def log_detail(self, request_id: str | None) -> None:
        """Write what the caller is not told to the server log, under the request id."""
        if self.detail:
            log.warning(
                "request %s answered %d %s: %s",
                request_id,
                self.status_code,
                self.code,
                self.detail,
            )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(EdgerouteError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    """The prompt (plus the output asked for) does not fit the model's context window.

    A 400, as OpenAI answers it, so SDK users catch it as ``BadRequestError`` with code
    ``context_length_exceeded``; 413 stays for request bodies over the byte limit."""

    default_code = "context_length_exceeded"


class ContentPolicyViolation(InvalidRequest):
    """The key's guardrail flagged the request's text or the model's answer."""

    default_code = "content_policy_violation"


class PiiDetected(InvalidRequest):
    """The key's PII mode is ``block`` and the text holds personal data or secrets: the
    message names the classes found, never the values."""

    default_code = "pii_detected"


class AuthenticationFailed(EdgerouteError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PaymentRequired(EdgerouteError):
    """The request is predicted to cost more than its ``x-edgeroute-max-cost`` allows."""

    status_code = 402
    error_type = "insufficient_quota"
    default_code = "cost_ceiling"


class PermissionDenied(EdgerouteError):
    status_code = 403
    error_type = "permission_error"
    default_code = "model_not_allowed"


class NotFound(EdgerouteError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class UnknownRoute(NotFound):
    """No route at this method and path."""

    default_code = "unknown_route"


class MethodNotAllowed(EdgerouteError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(EdgerouteError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimited(EdgerouteError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    """The key's monthly budget cannot cover what this request may cost."""

    error_type = "insufficient_quota"
    default_code = "budget_exceeded"


class ConcurrencyLimited(RateLimited):
    """The key already has as many requests in flight as its ``max_concurrent`` allows."""

    default_code = "concurrency_limit_exceeded"


class HTTPStatusError(EdgerouteError):
    """Any other HTTP failure the web framework raised, answered with its own status."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class InternalError(EdgerouteError):
    """An unexpected failure inside edgeroute (logged with the request id)."""

    default_code = "internal_error"

    @classmethod
    def logged(cls, request_id: str | None) -> InternalError:
        """The answer to a failure already logged under ``request_id``: its text and its
        traceback stay in the log."""
        return cls(
            f"edgeroute hit an internal error (request {request_id}). It has been logged; "
            "retry, and report the request id if it persists.",
        )


class StoreUnavailable(EdgerouteError):
    """The store (DynamoDB or SQLite) failed: nothing was charged, the request may be retried."""

    status_code = 503
    error_type = "server_error"
    default_code = "store_unavailable"

    def __init__(self, checking: str = "this key's quotas") -> None:
        super().__init__(
            f"edgeroute could not check {checking} just now (its store did not answer). "
            "Nothing was charged; retry in a moment.",
            headers={"Retry-After": "1"},
        )


class TokenKeysUnavailable(EdgerouteError):
    """A token's issuer did not hand over its signing keys (JWKS) in time: the token may
    be good, so a 503 to retry, never a 401."""

    status_code = 503
    error_type = "server_error"
    default_code = "jwks_unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            "edgeroute could not fetch the signing keys of this token's issuer just now. "
            "Retry in a moment; an edgeroute API key ('er-...') does not depend on them.",
            headers={"Retry-After": "5"},
            detail=detail,
        )


class Overloaded(EdgerouteError):
    """This instance is above its memory ceiling: new requests wait until it is below."""

    status_code = 503
    error_type = "server_error"
    default_code = "overloaded"


class UpstreamError(EdgerouteError):
    """The upstream answered with a failure or something that is not valid OpenAI output."""

    status_code = 502
    error_type = "server_error"
    default_code = "upstream_error"


class UpstreamRejected(UpstreamError):
    """The upstream refused the request with a 4xx edgeroute has no better name for
    (404, 413 ...): answered as an upstream error, but the request's doing, so it never
    counts against a circuit."""


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, refused the connection, or reported overload."""

    status_code = 503
    default_code = "upstream_unavailable"


class UpstreamAuthFailed(UpstreamError):
    """The upstream refused edgeroute's credential (401/403, IAM), or edgeroute could not
    read it (code ``upstream_credential_missing``): the gateway's configuration, which
    does not heal on its own. It counts against the target's shared circuit, the next
    target is tried at once, and operators see a metric and an ERROR log line."""

    default_code = "upstream_auth_failed"


class UpstreamThrottled(UpstreamUnavailable):
    """The upstream answered 429 and named a ``Retry-After``: the target is skipped until
    then (its circuit opens for that long), and the next target is tried at once."""

    @property
    def retry_after_s(self) -> float:
        return float(self.headers.get("Retry-After", "0"))


class UpstreamTimeout(UpstreamError):
    status_code = 504
    default_code = "upstream_timeout"


class ConfigError(Exception):
    """A configuration file (registry, policy) is invalid; the message names file and field."""
