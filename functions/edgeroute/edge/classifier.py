"""Classify a request from its text: task type, complexity, tokens, language, modality.

Task type comes from a logistic-regression head (ONNX) over the INT8 MiniLM embedding
the edge already computes plus a bag of its WordPiece ids; complexity from the
documented heuristic in ``complexity.py``; language from py3langid. Nothing here
calls a model upstream.

py3langid takes ~0.6 s to load (it decompresses its model), so language is worked out
only when something reads it: a policy rule on language, /v1/classify, /v1/route.

Cost is bounded for any input: the tokenizer reads at most ``EXACT_CHARS`` characters of
a text (the rest is counted by the linear estimate), language id reads the head, and the
complexity heuristics read a bounded head and tail with linear-time patterns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np

from edgeroute.edge import embedder
from edgeroute.edge.complexity import complexity_features, complexity_score
from edgeroute.edge.models import model_file, session
from edgeroute.wire.tokens import estimate_tokens

MODEL = "task-classifier"
_MESSAGE_OVERHEAD = 4  # role markers a chat template adds per message
# Tokenized exactly up to here (~8k tokens of prose): a 6 MB prompt took the tokenizer
# 3-7 s; past it the count is estimated, which context checks tolerate at that size.
EXACT_CHARS = 32_768
_LANGUAGE_CHARS = 2_000  # py3langid is as sure of a language from its first lines


@dataclass(frozen=True)
class Classification:
    task: str
    complexity: float
    prompt_tokens: int
    modality: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)
    text: str = field(default="", repr=False)  # the ask, for the language on demand
    known_language: str | None = None

    @cached_property
    def language(self) -> str:
        return self.known_language or language_of(self.text)

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "complexity": self.complexity,
            "language": self.language,
            "prompt_tokens": self.prompt_tokens,
            "modality": list(self.modality),
            "scores": self.scores,
            "complexity_features": self.features,
        }


@cache
def labels() -> tuple[str, ...]:
    return tuple(json.loads(model_file(MODEL, "labels.json").read_text()))


@cache
def _langid() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language_of(text: str) -> str:
    head = text[:_LANGUAGE_CHARS]
    if not head.strip():
        return "und"
    lang, _ = _langid().classify(head)
    return str(lang)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _images(messages: list[Any]) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for p in m["content"]
        if isinstance(p, dict) and p.get("type") == "image_url"
    )


def request_text(payload: dict[str, Any]) -> tuple[str, str]:
    """(the text that says what is asked, all text the prompt carries).

    The ask is the last user message: earlier turns and the system prompt shape the
    answer, but the task is what the user wants now.
    """
    if "messages" in payload:
        messages = [m for m in payload.get("messages") or [] if isinstance(m, dict)]
        everything = "\n".join(_text(m.get("content")) for m in messages)
        users = [m for m in messages if m.get("role") == "user"]
        ask = _text(users[-1].get("content")) if users else everything
        return ask, everything
    prompt = payload.get("prompt") or payload.get("input") or ""
    text = prompt if isinstance(prompt, str) else "\n".join(p for p in prompt if isinstance(p, str))
    return text, text


def count_tokens(text: str) -> int:
    """The embedder tokenizer's count ([CLS]/[SEP] included), exact up to EXACT_CHARS."""
    exact = len(embedder.tokenizer().encode(text[:EXACT_CHARS]).ids)
    return exact + estimate_tokens(text[EXACT_CHARS:])


def classify(payload: dict[str, Any]) -> Classification:
    """Classify a chat, completion or embeddings request body (blocking; ~3 ms)."""
    ask, everything = request_text(payload)
    messages = payload.get("messages") or []
    encoded = embedder.encode([ask[:EXACT_CHARS] or " "])  # it keeps 256 tokens anyway
    vector = embedder.embed_ids(encoded.ids)
    ids = np.asarray(encoded.ids, dtype=np.int64)
    feeds = {
        "embedding": vector.astype(np.float32),
        "input_ids": ids,  # the head also reads the tokens: MiniLM embeds non-English poorly
        "attention_mask": np.ones_like(ids),
    }
    _, probabilities = session(MODEL).run(None, feeds)
    probs = np.asarray(probabilities, dtype=np.float64)[0]
    names = labels()
    task = names[int(probs.argmax())]
    whole = not encoded.truncated[0] and len(ask) <= EXACT_CHARS
    ask_tokens = encoded.lengths[0] if whole else count_tokens(ask)
    total = ask_tokens if everything == ask else count_tokens(everything)
    prompt_tokens = total + _MESSAGE_OVERHEAD * len(messages)
    modality = ["text"]
    if _images(messages):
        modality.append("image")
    if payload.get("tools"):
        modality.append("tools")
    return Classification(
        task=task,
        complexity=complexity_score(ask, ask_tokens, task),
        prompt_tokens=prompt_tokens,
        modality=tuple(modality),
        scores={name: round(float(p), 4) for name, p in zip(names, probs, strict=True)},
        features={k: round(v, 3) for k, v in complexity_features(ask, ask_tokens).items()},
        text=ask,
    )


def warm(language: bool = False) -> None:
    """Load the sessions and run once; with ``language``, load py3langid too."""
    result = classify({"messages": [{"role": "user", "content": "warm up"}]})
    if language:
        _ = result.language
