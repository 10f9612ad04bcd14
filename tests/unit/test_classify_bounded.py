"""Classification costs a bounded amount for any input: the adversarial texts below once
took seconds to hours of CPU (80 KB of "a" was 26 s in one regular expression). The
ceiling is a generous guard against a hang on a loaded machine, not a benchmark."""

from __future__ import annotations

import time

import pytest

from edgeroute.edge import embedder
from edgeroute.edge.classifier import EXACT_CHARS, classify, count_tokens
from edgeroute.edge.complexity import complexity_features
from edgeroute.wire.tokens import estimate_tokens

CEILING_S = 5.0  # measured 0.03-0.25 s each on a 2-core machine
ADVERSARIAL = {
    "one long word": "a" * 2_000_000,
    "calls without an end": "a(" * 500_000,
    "newlines": "\n" * 2_000_000,
    "nested brackets": "(" * 500_000 + ")" * 500_000,
    "repeated sql": "SELECT " * 150_000,
    "digits": "1" * 2_000_000,
    "mixed scripts": "中文 text ñ ü 日本語 " * 60_000,
    "list markers": "- \n" * 500_000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_any_input_is_classified_within_the_ceiling(text: str) -> None:
    started = time.perf_counter()
    result = classify({"messages": [{"role": "user", "content": text}]})
    _ = result.language
    assert time.perf_counter() - started < CEILING_S
    assert result.prompt_tokens >= estimate_tokens(text[EXACT_CHARS:])


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_the_heuristics_alone_are_linear(text: str) -> None:
    started = time.perf_counter()
    complexity_features(text * 4, tokens=512)
    assert time.perf_counter() - started < CEILING_S


def test_short_texts_are_counted_exactly() -> None:
    text = "Explain how a circuit breaker protects an upstream. " * 20
    assert len(text) < EXACT_CHARS
    assert count_tokens(text) == len(embedder.tokenizer().encode(text)) + 2  # <s>, </s>
