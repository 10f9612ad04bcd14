"""Classify a request from its text: task type, complexity, tokens, language, modality.

Task type and complexity come from the learned heads (``heads.py``) over the multilingual
sentence vectors of the ask's head, tail and opening, a bag of its pieces and a few
cheap signals (``features.py``); complexity is the expected minimum tier on a 0-1 scale.
Language comes from py3langid.
Nothing here calls a model upstream.

py3langid takes ~0.6 s to load (it decompresses its model), so language is worked out
only when something reads it: a policy rule on language, /v1/classify, /v1/route.
Likewise numpy, onnxruntime and sentencepiece (the heads, the embedder) are imported by
the first classification, not with this module: a process that classifies nothing (the
router serving /healthz or key administration) never loads them.

Cost is bounded for any input: the features read a bounded head and tail of the ask,
token counts are exact for ``EXACT_CHARS`` characters and estimated past them, and
language id reads the head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from edgeroute.wire.tokens import estimate_tokens

_MESSAGE_OVERHEAD = 4  # role markers a chat template adds per message
# Tokenized exactly up to here; past it the count is estimated (wire/tokens.py), which
# context checks and reservations tolerate: SentencePiece takes up to ~1.7 us a character
# on mixed scripts, and classification must stay within a few ms for any input.
EXACT_CHARS = 2_048
_LANGUAGE_CHARS = 2_000  # py3langid is as sure of a language from its first lines


@dataclass(frozen=True)
class Classification:
    task: str
    complexity: float
    prompt_tokens: int
    modality: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)
    features: dict[str, float] = field(default_factory=dict)  # what moved the complexity
    scores_tier: tuple[float, float] = (0.0, 0.0)  # P(tier >= medium), P(tier >= large)
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
            "at_least_medium": self.scores_tier[0],
            "at_least_large": self.scores_tier[1],
            "complexity_signals": self.features,
        }


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
    """The embedder tokenizer's count (<s>/</s> included), exact up to EXACT_CHARS."""
    from edgeroute.edge import embedder

    exact = len(embedder.pieces([text[:EXACT_CHARS]])[0])
    return exact + estimate_tokens(text[EXACT_CHARS:])


def classify(payload: dict[str, Any]) -> Classification:
    """Classify a chat, completion or embeddings request body (blocking; a few ms)."""
    from edgeroute.edge import features, heads

    ask, everything = request_text(payload)
    messages = payload.get("messages") or []
    found = features.extract(ask, everything, len(messages))
    scores = heads.score(found.vector, found.bag)
    total = found.ask_tokens if everything == ask else count_tokens(everything)
    prompt_tokens = total + _MESSAGE_OVERHEAD * len(messages)
    modality = ["text"]
    if _images(messages):
        modality.append("image")
    if payload.get("tools"):
        modality.append("tools")
    return Classification(
        task=scores.task,
        complexity=scores.complexity,
        prompt_tokens=prompt_tokens,
        modality=tuple(modality),
        scores=scores.task_probabilities,
        features=heads.top_signals(scores.signals),
        scores_tier=(scores.at_least_medium, scores.at_least_large),
        text=ask,
    )


def warm(language: bool = False) -> None:
    """Load the sessions and run once; with ``language``, load py3langid too."""
    result = classify({"messages": [{"role": "user", "content": "warm up"}]})
    if language:
        _ = result.language
