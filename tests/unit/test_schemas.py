"""The request schemas' own limits: every flag a JSON boolean, every count a JSON integer,
every number finite, each within the absolute caps whatever the model; a refusal names
the field and what to send instead."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from edgeroute.errors import InvalidRequest
from edgeroute.wire.schemas import (
    BEST_OF_CAP,
    INPUT_TOKENS_CAP,
    MAX_TOKENS_CAP,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModerationRequest,
)
from edgeroute.wire.validation import validation_error

CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION: dict[str, Any] = {"model": "m", "prompt": "hi"}
EMBEDDING: dict[str, Any] = {"model": "m", "input": "hi"}


def _refusal(schema: type[BaseModel], body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(ValidationError) as caught:
        schema.model_validate(body)
    return validation_error(caught.value)


FLAGS = [
    (ChatCompletionRequest, CHAT, "stream"),
    (ChatCompletionRequest, CHAT, "logprobs"),
    (ChatCompletionRequest, CHAT, "parallel_tool_calls"),
    (ChatCompletionRequest, CHAT, "store"),
    (CompletionRequest, COMPLETION, "stream"),
    (CompletionRequest, COMPLETION, "echo"),
    (EmbeddingRequest, EMBEDDING, "truncate"),
]


@pytest.mark.parametrize(("schema", "base", "field"), FLAGS)
def test_a_flag_is_a_json_boolean_and_nothing_else(
    schema: type[BaseModel], base: dict[str, Any], field: str
) -> None:
    for value in (True, False):
        assert getattr(schema.model_validate({**base, field: value}), field) is value
    for wrong in ("yes", "true", "false", "on", 1, 0, 1.0):
        error = _refusal(schema, {**base, field: wrong})
        assert error.param == field
        assert "must be a JSON boolean, true or false" in error.message


@pytest.mark.parametrize("value", ["yes", 1])
def test_nested_and_function_flags_are_json_booleans_too(value: object) -> None:
    error = _refusal(
        ChatCompletionRequest, {**CHAT, "stream": True, "stream_options": {"include_usage": value}}
    )
    assert error.param == "stream_options.include_usage"
    tool = {"type": "function", "function": {"name": "f", "strict": value}}
    assert _refusal(ChatCompletionRequest, {**CHAT, "tools": [tool]}).param == (
        "tools[0].function.strict"
    )


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [10**12, 2**63, 10**30, MAX_TOKENS_CAP + 1])
def test_output_tokens_past_the_absolute_cap_are_refused(field: str, value: int) -> None:
    error = _refusal(ChatCompletionRequest, {**CHAT, field: value})

    assert error.param == field
    assert f"less than or equal to {MAX_TOKENS_CAP}" in error.message
    assert getattr(ChatCompletionRequest.model_validate({**CHAT, field: MAX_TOKENS_CAP}), field)


@pytest.mark.parametrize("value", [1e30, 100.0, "100", True])
def test_a_count_that_is_not_a_json_integer_is_refused(value: object) -> None:
    error = _refusal(ChatCompletionRequest, {**CHAT, "max_tokens": value})

    assert error.param == "max_tokens"
    assert "must be a JSON integer" in error.message


def test_best_of_is_capped_and_at_least_n() -> None:
    completion = {**COMPLETION, "n": 2, "best_of": BEST_OF_CAP}
    assert CompletionRequest.model_validate(completion).best_of == BEST_OF_CAP
    assert _refusal(CompletionRequest, {**completion, "best_of": BEST_OF_CAP + 1}).param == (
        "best_of"
    )


@pytest.mark.parametrize(
    ("schema", "body", "param", "words"),
    [
        (CompletionRequest, {**COMPLETION, "best_of": 10**6}, "best_of", "or equal to 20"),
        (CompletionRequest, {**COMPLETION, "n": 3, "best_of": 2}, "best_of", "best n (3)"),
        (CompletionRequest, {**COMPLETION, "logprobs": True}, "logprobs", "JSON integer"),
        (ChatCompletionRequest, {**CHAT, "top_logprobs": 21}, "top_logprobs", "equal to 20"),
        (ChatCompletionRequest, {**CHAT, "seed": 2**63}, "seed", "less than or equal"),
        (ChatCompletionRequest, {**CHAT, "temperature": float("nan")}, "temperature", "finite"),
        (ChatCompletionRequest, {**CHAT, "top_p": float("inf")}, "top_p", "finite"),
        (ChatCompletionRequest, {**CHAT, "temperature": "0.5"}, "temperature", "JSON number"),
        (ChatCompletionRequest, {**CHAT, "logit_bias": {"42": 101}}, "logit_bias.42", "100"),
        (EmbeddingRequest, {**EMBEDDING, "dimensions": 10**9}, "dimensions", "65536"),
        (EmbeddingRequest, {**EMBEDDING, "input": [[1, -1]]}, "input[0][1]", "greater than"),
        (EmbeddingRequest, {**EMBEDDING, "stream": True}, "stream", "do not stream"),
    ],
)
def test_numbers_out_of_bounds_name_the_field_and_the_bound(
    schema: type[BaseModel], body: dict[str, Any], param: str, words: str
) -> None:
    error = _refusal(schema, body)

    assert error.param == param
    assert words in error.message
    assert f"Fix '{param}'" in error.message


@pytest.mark.parametrize(
    ("schema", "body", "within"),
    [
        (
            EmbeddingRequest,
            {**EMBEDDING, "input": ["word " * 4_000] * 256},
            {**EMBEDDING, "input": ["word " * 800] * 256},
        ),
        (
            EmbeddingRequest,
            {**EMBEDDING, "input": [[7] * 2_000] * 200},
            {**EMBEDDING, "input": [[7] * 1_000] * 200},
        ),
        (ModerationRequest, {"input": ["x" * 20_000] * 256}, {"input": ["x" * 4_000] * 256}),
    ],
)
def test_the_work_of_one_request_is_bounded(
    schema: type[BaseModel], body: dict[str, Any], within: dict[str, Any]
) -> None:
    error = _refusal(schema, body)

    assert error.param == "input"
    assert f"at most {INPUT_TOKENS_CAP} tokens" in error.message
    assert "Split 'input' over several requests" in error.message
    schema.model_validate(within)
