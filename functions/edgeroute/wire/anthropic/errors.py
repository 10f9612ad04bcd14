"""edgeroute's errors in Anthropic's shape and status codes, for the Messages routes.

``{"type": "error", "error": {"type": ..., "message": ...}}``: the message is the one
the OpenAI routes give (it names the field and the fix); the type and status are
Anthropic's, so its SDK raises the matching class (``BadRequestError``,
``AuthenticationError``, ``NotFoundError``, ``RateLimitError``, ``InternalServerError``
...). An upstream that is unreachable or overloaded answers 529 ``overloaded_error``,
which Anthropic's clients retry; other upstream failures are a 500 ``api_error``.
"""

from __future__ import annotations

from edgeroute.errors import EdgerouteError
from edgeroute.types import Json

ANTHROPIC_PATHS = ("/v1/messages",)
"""The routes that answer in Anthropic's shape (the body limit refuses before routing)."""

# Status edgeroute answers → (Anthropic's status, Anthropic's error type).
_BY_STATUS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    405: (405, "invalid_request_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}
_SERVER = (500, "api_error")


def anthropic_status(error: EdgerouteError) -> tuple[int, str]:
    """Anthropic's (status, error type) for an edgeroute error."""
    if error.status_code in _BY_STATUS:
        return _BY_STATUS[error.status_code]
    return _SERVER if error.status_code >= 500 else (error.status_code, "invalid_request_error")


def error_event(error_type: str, message: str) -> Json:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def anthropic_error(error: EdgerouteError) -> tuple[int, Json]:
    """(status, body) of ``error`` as Anthropic answers."""
    status, kind = anthropic_status(error)
    return status, error_event(kind, error.message)


_OVERLOADED_CODES = frozenset({"upstream_unavailable", "upstream_connection_reset", "overloaded"})


def stream_error_event(body: Json) -> Json:
    """The OpenAI error event a failed stream ends with, as Anthropic's ``error`` event:
    ``overloaded_error`` when the upstream went away, ``api_error`` otherwise."""
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    kind = "overloaded_error" if error.get("code") in _OVERLOADED_CODES else "api_error"
    return error_event(kind, str(error.get("message") or "The response failed."))
