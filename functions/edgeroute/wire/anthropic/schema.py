"""The body of ``POST /v1/messages`` (Anthropic's Messages API), checked field by field.

Invariant: a request that passes can be served as Anthropic documents it, or is refused
with a 400 naming the field: unknown fields are refused as Anthropic's API refuses them,
and what edgeroute cannot honour (server tools, extended thinking, documents, citations)
is refused by name, never dropped. ``cache_control`` is the one hint accepted and
ignored: prompt caching changes what a call costs at Anthropic, never what it answers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError

from edgeroute.wire.schemas import MAX_TOKENS_CAP, Flag, Number, RequestBody

# Block types Anthropic defines that edgeroute cannot serve over a chat completions
# upstream, each with what to do instead.
UNSUPPORTED_BLOCKS = {
    "document": "documents (PDF or text sources) are not supported; send the text as a "
    "'text' block",
    "search_result": "search results are not supported; send the text as a 'text' block",
    "thinking": "thinking blocks are not supported (extended thinking is not); leave them out",
    "redacted_thinking": "thinking blocks are not supported; leave them out",
    "server_tool_use": "server tools are not supported; leave the block out",
    "web_search_tool_result": "server tools are not supported; leave the block out",
    "web_fetch_tool_result": "server tools are not supported; leave the block out",
    "code_execution_tool_result": "server tools are not supported; leave the block out",
    "mcp_tool_use": "MCP tools are not supported; leave the block out",
    "mcp_tool_result": "MCP tools are not supported; leave the block out",
    "container_upload": "containers are not supported; leave the block out",
}
STOP_SEQUENCES_CAP = 4
"""``stop_sequences``: the most OpenAI-compatible upstreams take (OpenAI's ``stop``)."""


class _Closed(BaseModel):
    """Unknown fields are refused, as Anthropic's API refuses them."""

    model_config = ConfigDict(extra="forbid")


CacheControl = dict[str, Any] | None  # accepted and ignored (see the module docstring)


class TextBlock(_Closed):
    type: Literal["text"]
    text: str
    cache_control: CacheControl = None


class Base64Source(_Closed):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class URLSource(_Closed):
    type: Literal["url"]
    url: str = Field(min_length=1)


class ImageBlock(_Closed):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]
    cache_control: CacheControl = None


class ToolUseBlock(_Closed):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=64)
    input: dict[str, Any]
    cache_control: CacheControl = None


class ToolResultBlock(_Closed):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[TextBlock] | None = None
    is_error: Flag | None = None
    cache_control: CacheControl = None


def _supported_block(value: Any) -> Any:
    kind = value.get("type") if isinstance(value, dict) else None
    if isinstance(kind, str) and kind in UNSUPPORTED_BLOCKS:
        raise PydanticCustomError(
            "unsupported_block",
            "content blocks of type '{kind}' cannot be served: {why}",
            {"kind": kind, "why": UNSUPPORTED_BLOCKS[kind]},
        )
    return value


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock,
    Field(discriminator="type"),
    BeforeValidator(_supported_block),
]


class Message(_Closed):
    role: Literal["user", "assistant", "system"]  # system: SDKs from 2026 send it here too
    content: str | Annotated[list[Block], Field(min_length=1)]


class Tool(_Closed):
    """A client tool; server tools (``web_search_20250305``, ``bash_20250124`` ...) carry
    a versioned ``type`` and run at Anthropic, which no upstream here can do."""

    type: Literal["custom"] | None = None
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl = None

    @model_validator(mode="before")
    @classmethod
    def _client_tool(cls, value: Any) -> Any:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind is not None and kind != "custom":
            raise PydanticCustomError(
                "unsupported_tool",
                "tools of type '{kind}' (server tools, run by Anthropic) cannot be served; "
                "declare a client tool with 'name', 'description' and 'input_schema'",
                {"kind": str(kind)},
            )
        return value


class ToolChoice(_Closed):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(default=None, min_length=1)
    disable_parallel_tool_use: Flag | None = None

    @model_validator(mode="after")
    def _named_when_tool(self) -> ToolChoice:
        if (self.type == "tool") != (self.name is not None):
            raise PydanticCustomError(
                "tool_choice_name",
                "'name' is required with type 'tool' and only with it",
            )
        return self


class Metadata(_Closed):
    user_id: str | None = Field(default=None, max_length=256)


class Thinking(BaseModel):
    """Only ``{"type": "disabled"}``: every other mode asks for thinking blocks."""

    model_config = ConfigDict(extra="allow")
    type: str

    @model_validator(mode="after")
    def _not_enabled(self) -> Thinking:
        if self.type != "disabled":
            raise PydanticCustomError(
                "thinking_unsupported",
                "extended thinking cannot be honoured by edgeroute's upstreams; leave "
                "'thinking' out or set its type to 'disabled'",
            )
        return self


class MessagesRequest(RequestBody):
    """``POST /v1/messages``. ``max_tokens`` is required, as Anthropic requires it."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    max_tokens: Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS_CAP)]
    messages: Annotated[list[Message], Field(min_length=1)]
    system: str | list[TextBlock] | None = None
    temperature: Annotated[Number, Field(ge=0.0, le=1.0)] | None = None
    top_p: Annotated[Number, Field(ge=0.0, le=1.0)] | None = None
    top_k: Annotated[StrictInt, Field(ge=0)] | None = None
    stop_sequences: Annotated[list[str], Field(max_length=STOP_SEQUENCES_CAP)] | None = None
    stream: Flag = False
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    thinking: Thinking | None = None
    cache_control: CacheControl = None


class CountTokensRequest(RequestBody):
    """``POST /v1/messages/count_tokens``: a Messages request without the sampling fields."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    messages: Annotated[list[Message], Field(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
