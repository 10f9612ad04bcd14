"""The one small interface every upstream adapter implements, and the types it speaks.

Adapters take and return the OpenAI wire shape (plain dicts), whatever the
protocol underneath, so the pipeline never branches on protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import UpstreamError

Json = dict[str, Any]


class Kind(StrEnum):
    """What the caller asked for; each maps to one OpenAI route."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens", 0)
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        return cls(prompt, completion)

    def to_openai(self) -> Json:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


def stream_ended_early(where: str) -> UpstreamError:
    """The error every adapter raises when a stream closes before its last chunk."""
    return UpstreamError(
        f"{where} ended the stream before it finished. The response is incomplete; retry it.",
        code="upstream_truncated",
    )


class Upstream(Protocol):
    """A protocol adapter. Raises ``edgeroute.errors.UpstreamError`` subclasses on failure."""

    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        """One buffered request; returns the OpenAI-shaped response body."""

    def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> AsyncIterator[Json]:
        """OpenAI-shaped chunks as they arrive.

        The first ``__anext__`` returns only once the upstream accepted the request, so
        failures before the first byte surface there (and can be retried elsewhere).
        """
