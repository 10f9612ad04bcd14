"""Reservations count a prompt at an upper bound of its true tokens (``bound_tokens``):
the central estimate (~4 characters a token) undercounted numbers, code, other scripts
and the chat template, so a tokens-per-minute limit ended 6% over. The bound's ratio to
SmolLM2's real counts is measured in bench/token_bound.py; the acceptance test floods
llama.cpp with real prompts (tests/acceptance/test_token_limits.py)."""

from __future__ import annotations

from typing import Any

from edgeroute.config.registry import parse_registry
from edgeroute.pipeline.resolve import plan
from edgeroute.store.keys import mint_key
from edgeroute.types import Kind
from edgeroute.wire.tokens import (
    BOUND_PER_REQUEST,
    bound_input_tokens,
    bound_prompt_tokens,
    bound_tokens,
    estimate_prompt_tokens,
    estimate_tokens,
)


def test_what_tokenizers_split_finest_counts_a_token_each() -> None:
    # SmolLM2 gives each digit a token; byte-level BPE can spend a token per byte.
    assert bound_tokens("0123456789" * 10) >= 100
    assert bound_tokens("한국어" * 20) >= len(("한국어" * 20).encode())
    assert bound_tokens("{[(<>)]};,.!?" * 5) >= 65
    assert bound_tokens("\t\n  \n") == 5  # whitespace is a token unless a word follows


def test_words_cost_a_piece_each_plus_their_length() -> None:
    assert bound_tokens("Hello world") == 2 + 3  # two pieces, ceil(10 / 3.5) letters
    assert bound_tokens("mLCws0TbzkF7") > estimate_tokens("mLCws0TbzkF7") * 2  # base64
    assert bound_tokens("HTTPServer") == 2 + 3  # HTTP, Server
    assert bound_tokens("") == 0


def test_the_bound_is_never_below_the_central_estimate() -> None:
    texts = ["What is the capital of France?", "你好\uff0c世界", "x = [1, 2, 3]", "Ünïcödé"]
    for text in texts:
        assert bound_tokens(text) >= estimate_tokens(text), text
    messages = [{"role": "user", "content": "hi"}]
    assert bound_prompt_tokens(messages) >= BOUND_PER_REQUEST > estimate_prompt_tokens(messages)
    assert bound_input_tokens(["abc", [1, 2, 3], 7]) == bound_tokens("abc") + 3 + 1


def test_a_named_model_reserves_the_bound_and_checks_context_with_the_estimate() -> None:
    registry = parse_registry("models: [{name: m, endpoint: 'http://m:1/v1', tier: small}]", "test")
    _, key = mint_key("k")
    text = "2024-05-13 48,200 12,400 21,800 9,800 " * 20  # numbers: ~1 token a character
    messages = [{"role": "user", "content": text}]
    payload: dict[str, Any] = {"model": "m", "messages": messages}
    decided = plan(registry, key, Kind.CHAT, payload)
    assert decided.prompt_tokens == estimate_prompt_tokens(messages)
    assert decided.reserve_tokens == bound_prompt_tokens(messages)
    assert decided.reserve_tokens > 2 * decided.prompt_tokens
