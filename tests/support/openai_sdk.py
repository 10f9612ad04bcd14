"""Typed helpers for tests that talk to the gateway through the openai SDK: messages the
SDK's signatures accept as they are, and the fields of an error body, which the SDK types
as ``object``."""

from __future__ import annotations

import openai
from openai.types.chat import ChatCompletionMessageParam

# The error types OpenAI answers with (insufficient_quota: a spent quota or budget).
OPENAI_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "rate_limit_error",
        "server_error",
        "insufficient_quota",
    }
)


def user_says(content: str) -> list[ChatCompletionMessageParam]:
    """One user turn, as ``messages=``."""
    return [{"role": "user", "content": content}]


def error_field(error: openai.APIStatusError, field: str) -> object:
    """``field`` of the gateway's OpenAI-shaped error body (the SDK unwraps ``error``)."""
    body = error.body
    assert isinstance(body, dict), body
    return body[field]
