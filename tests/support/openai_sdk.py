"""Typed helpers for tests that talk to the gateway through the openai SDK: messages the
SDK's signatures accept as they are, and the fields of an error body, which the SDK types
as ``object``."""

from __future__ import annotations

import openai
from openai.types.chat import ChatCompletionMessageParam


def user_says(content: str) -> list[ChatCompletionMessageParam]:
    """One user turn, as ``messages=``."""
    return [{"role": "user", "content": content}]


def error_field(error: openai.APIStatusError, field: str) -> object:
    """``field`` of the gateway's OpenAI-shaped error body (the SDK unwraps ``error``)."""
    body = error.body
    assert isinstance(body, dict), body
    return body[field]
