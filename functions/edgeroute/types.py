"""The shared vocabulary at the bottom of the import graph: what a request is for, what
a model can do, and what a call used. Everything in edgeroute may import this module;
it imports nothing of edgeroute's."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Json = dict[str, Any]
# OpenAI-shaped chunks as an upstream streams them; closing it closes the upstream request.
Chunks = AsyncGenerator[Json, None]


class Capability(StrEnum):
    """What a registry model can do; a request needs its kind's capability and maybe more."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    VISION = "vision"
    AUDIO = "audio"  # input_audio content parts
    FILES = "files"  # file content parts
    TOOLS = "tools"
    JSON = "json"
    MODERATION = "moderation"


class Kind(StrEnum):
    """What the caller asked for: one OpenAI route, and the capability a model needs for it."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MODERATIONS = "moderations"

    @property
    def path(self) -> str:
        """The OpenAI route, as callers and batch files name it."""
        return _PATHS[self]

    @property
    def capability(self) -> Capability:
        return _CAPABILITIES[self]

    @property
    def prompt_param(self) -> str:
        """The body field that carries what the model reads, as errors name it."""
        return _PROMPT_PARAMS[self]

    @classmethod
    def from_path(cls, path: str) -> Kind | None:
        return _BY_PATH.get(path)


_PATHS = {
    Kind.CHAT: "/v1/chat/completions",
    Kind.COMPLETIONS: "/v1/completions",
    Kind.EMBEDDINGS: "/v1/embeddings",
    Kind.MODERATIONS: "/v1/moderations",
}
_BY_PATH = {path: kind for kind, path in _PATHS.items()}
_PROMPT_PARAMS = {
    Kind.CHAT: "messages",
    Kind.COMPLETIONS: "prompt",
    Kind.EMBEDDINGS: "input",
    Kind.MODERATIONS: "input",
}
_CAPABILITIES = {
    Kind.CHAT: Capability.CHAT,
    Kind.COMPLETIONS: Capability.COMPLETIONS,
    Kind.EMBEDDINGS: Capability.EMBEDDINGS,
    Kind.MODERATIONS: Capability.MODERATION,
}


@dataclass(frozen=True)
class Usage:
    """Tokens one call used; ``estimated`` when no upstream reported them."""

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
