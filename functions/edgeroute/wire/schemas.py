"""Request bodies of the OpenAI-compatible routes (pydantic v2).

Known fields are typed so bad input gets a 400 naming the field; unknown fields
are kept (``extra="allow"``) and passed through to upstreams that understand them.

Invariant: every number and flag a client sends is of its JSON type exactly (a flag is
``true`` or ``false``, never ``"yes"`` or ``1``; a count is an integer, never ``"5"`` or
``true``; a number is finite) and within the absolute caps below, whatever model it is
for. A model's own parameter rules (``pipeline/params.py``) narrow these further.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edgeroute.wire.text import valid_text
from edgeroute.wire.tokens import estimate_input_tokens

# Absolute caps on what one request may ask for, even of a model whose registry entry
# declares no limit. Past a cap a request is refused (400 naming the field), never clamped.
MAX_TOKENS_CAP = 1_048_576
"""``max_tokens`` / ``max_completion_tokens``: 2**20, more output than the largest
context window of any model in service (about one million tokens) could hold."""
N_CAP = 16
"""``n``: completions per request (OpenAI allows 128; 16 bounds one request's fan-out)."""
BEST_OF_CAP = 20
"""``best_of``: OpenAI's documented maximum; each candidate is a whole generation."""
TOP_LOGPROBS_CAP = 20
"""``top_logprobs`` (chat): OpenAI's maximum."""
COMPLETION_LOGPROBS_CAP = 5
"""``logprobs`` (legacy completions): OpenAI's maximum."""
LOGIT_BIAS_RANGE = (-100.0, 100.0)
"""``logit_bias`` values: OpenAI's range."""
SEED_RANGE = (-(2**63), 2**63 - 1)
"""``seed``: a signed 64-bit integer, what upstreams (vLLM, llama.cpp, TGI) store it in."""
DIMENSIONS_CAP = 65_536
"""``dimensions`` (embeddings): far above any embedding model's width (the widest give 8,192)."""
TOKEN_ID_CAP = 2**31 - 1
"""A token id in an embeddings ``input``: vocabularies are far smaller than 2**31."""
EMBEDDING_INPUTS_CAP = 2048
"""Inputs in one embeddings request: OpenAI's maximum."""
MODERATION_INPUTS_CAP = 256
"""Inputs in one moderations request."""
INPUT_TOKENS_CAP = 300_000
"""Tokens summed over all inputs of one embeddings or moderations request (estimated):
OpenAI's per-request limit for embeddings. It bounds the work one request can ask for;
the edge embedder bounds its own CPU time more tightly (``upstreams/edge.py``)."""

Flag = StrictBool
TokenCount = Annotated[StrictInt, Field(ge=1, le=MAX_TOKENS_CAP)]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
TokenId = Annotated[StrictInt, Field(ge=0, le=TOKEN_ID_CAP)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class RequestBody(_Open):
    """A whole request body: its text is valid Unicode, checked before any field."""

    @model_validator(mode="before")
    @classmethod
    def _valid_text(cls, data: Any) -> Any:
        return valid_text(data)

    def payload(self) -> dict[str, Any]:
        """The body as the pipeline and the upstreams get it: the fields the caller set,
        nulls left out at every depth. In OpenAI's API null means absent, but llama.cpp
        answers a null 'name' or 'tool_call_id' in a message, or a null tool
        'description', with a 500, which would count against the endpoint's shared
        circuit for every tenant."""
        return self.model_dump(exclude_unset=True, exclude_none=True)


class ImageURL(_Open):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL


class OtherPart(_Open):
    type: Literal["input_audio", "file", "refusal"]


ContentPart = Annotated[TextPart | ImagePart | OtherPart, Field(discriminator="type")]


class CalledFunction(_Open):
    name: str = Field(min_length=1, max_length=64)
    arguments: str  # JSON text, as the model wrote it


class ToolCall(_Open):
    """An assistant's earlier tool call: checked here, because an upstream handed a
    malformed one (``tool_calls: [{}]``) answers 500, which would count against the
    endpoint's shared circuit for every tenant."""

    id: str = Field(min_length=1)
    type: Literal["function"]
    function: CalledFunction


def _content_documented_required(schema: dict[str, Any]) -> None:
    """The document says what the validator below enforces for every role but one:
    ``content`` is required and not null (an assistant message calling tools is the
    exception the description names), so schema-driven clients send it."""
    schema["required"] = [*schema.get("required", []), "content"]
    content = schema["properties"]["content"]
    content["anyOf"] = [s for s in content.get("anyOf", []) if s.get("type") != "null"]
    content.pop("default", None)
    content["description"] = (
        "Required, except that an assistant message with 'tool_calls' may leave it out."
    )


class Message(_Open):
    model_config = ConfigDict(extra="allow", json_schema_extra=_content_documented_required)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    # After role and tool_calls, which decide whether it may be left out.
    content: str | list[ContentPart] | None = Field(default=None, validate_default=True)

    @field_validator("content")
    @classmethod
    def _content_unless_calling_tools(
        cls, value: str | list[ContentPart] | None, info: ValidationInfo
    ) -> str | list[ContentPart] | None:
        """OpenAI's rule, and the upstreams': only an assistant message that calls tools
        may go without content (llama.cpp answers a content-less tool message with a 500,
        which would count against the endpoint's shared circuit for every tenant)."""
        if value is not None:
            return value
        role = info.data.get("role")
        if role == "assistant" and info.data.get("tool_calls"):
            return value
        needs = "'content' or 'tool_calls'" if role == "assistant" else "'content'"
        raise PydanticCustomError(
            "content_required",
            "a message with role '{role}' needs {needs}. Add 'content' (a string, or a "
            "list of parts), or leave the message out",
            {"role": str(role), "needs": needs},
        )


class StreamOptions(_Open):
    include_usage: Flag = False


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class FunctionDef(_Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: Flag | None = None


class Tool(_Open):
    type: Literal["function"]
    function: FunctionDef


class _Sampling(RequestBody):
    model: str = Field(min_length=1)
    stream: Flag = False
    stream_options: StreamOptions | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    n: Annotated[StrictInt, Field(ge=1, le=N_CAP)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: Annotated[StrictInt, Field(ge=SEED_RANGE[0], le=SEED_RANGE[1])] | None = None
    max_tokens: TokenCount | None = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    logit_bias: (
        dict[str, Annotated[Number, Field(ge=LOGIT_BIAS_RANGE[0], le=LOGIT_BIAS_RANGE[1])]] | None
    ) = None
    user: str | None = None


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: TokenCount | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: Flag | None = None
    logprobs: Flag | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=TOP_LOGPROBS_CAP)] | None = None
    store: Flag | None = None


class CompletionRequest(_Sampling):
    prompt: str | Annotated[list[str], Field(min_length=1)]
    echo: Flag | None = None
    suffix: str | None = None
    logprobs: Annotated[StrictInt, Field(ge=0, le=COMPLETION_LOGPROBS_CAP)] | None = None
    best_of: Annotated[StrictInt, Field(ge=1, le=BEST_OF_CAP)] | None = None

    @field_validator("best_of")
    @classmethod
    def _at_least_n(cls, value: int | None, info: ValidationInfo) -> int | None:
        n = info.data.get("n")
        if value is not None and isinstance(n, int) and value < n:
            raise PydanticCustomError(
                "best_of_below_n",
                "best_of ({best_of}) is how many completions are generated to return the "
                "best n ({n}), so it must be at least 'n'. Raise 'best_of' or lower 'n'",
                {"best_of": value, "n": n},
            )
        return value


def _within_input_tokens(value: Any) -> Any:
    tokens = estimate_input_tokens(value)
    if tokens > INPUT_TOKENS_CAP:
        raise PydanticCustomError(
            "too_many_tokens",
            "the inputs come to about {tokens} tokens; one request may carry at most "
            "{cap} tokens over all its inputs. Split 'input' over several requests",
            {"tokens": tokens, "cap": INPUT_TOKENS_CAP},
        )
    return value


class EmbeddingRequest(RequestBody):
    model: str = Field(min_length=1)
    input: Annotated[
        str
        | Annotated[list[str], Field(min_length=1, max_length=EMBEDDING_INPUTS_CAP)]
        | Annotated[list[TokenId], Field(min_length=1)]
        | Annotated[
            list[Annotated[list[TokenId], Field(min_length=1)]],
            Field(min_length=1, max_length=EMBEDDING_INPUTS_CAP),
        ],
        AfterValidator(_within_input_tokens),
    ]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[StrictInt, Field(ge=1, le=DIMENSIONS_CAP)] | None = None
    user: str | None = None
    stream: Flag | None = Field(default=None, description="embeddings do not stream")
    truncate: Flag | None = Field(
        default=None, description="edgeroute extension: cut inputs over the model's limit"
    )

    @field_validator("stream")
    @classmethod
    def _never_streams(cls, value: bool | None) -> bool | None:
        if value:
            raise PydanticCustomError(
                "no_stream", "embeddings do not stream. Leave 'stream' out or send false"
            )
        return value


class ModerationRequest(RequestBody):
    input: Annotated[
        str | Annotated[list[str], Field(min_length=1, max_length=MODERATION_INPUTS_CAP)],
        AfterValidator(_within_input_tokens),
    ]
    model: str | None = Field(default=None, min_length=1)
