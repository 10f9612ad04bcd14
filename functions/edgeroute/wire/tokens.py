"""Token counts without a tokenizer: a central estimate and an upper bound.

``estimate_*``: about four characters per token for Latin-script text, one per character
for CJK, which is what BPE tokenizers of current open models average on ordinary prose.
For context checks, routing features, and usage for upstreams that report none (marked
estimated in the ledger). It undercounts code, numbers and most non-English text.

``bound_*``: at least the true count, for reservations against token limits (settlement
then gives back the difference). Byte-level BPE spends at least one byte a token, so:
every non-ASCII byte, digit, punctuation mark and whitespace character (but a space
before a word) may be a token of its own; a run of ASCII letters costs one token per
case-delimited piece plus one per ``LETTERS_PER_TOKEN`` letters; and the chat template
adds tokens per message and per request (SmolLM2's adds a 25-token default system
prompt). Measured against SmolLM2's llama.cpp tokenizer over the 3,500 labelled ShareGPT
prompts and 1,116 written prompts in six languages (docs/benchmarks.md), the bound never
fell below the true count; its median is 1.4-1.7x.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_WIDE = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")  # CJK, kana, hangul
# Wide characters are counted in this many characters at each end of a longer text and
# the share extrapolated, so an estimate costs the same for 6 MB as for 16 kB.
_SAMPLE_CHARS = 8_192


def _wide_count(text: str) -> int:
    return 0 if text.isascii() else len(text) - len(_WIDE.sub("", text))


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    if len(text) <= 2 * _SAMPLE_CHARS:
        wide = _wide_count(text)
    else:
        sample = text[:_SAMPLE_CHARS] + text[-_SAMPLE_CHARS:]
        wide = round(_wide_count(sample) / len(sample) * len(text))
    return wide + math.ceil((len(text) - wide) / 4)


LETTERS_PER_TOKEN = 3.5
BOUND_PER_MESSAGE = 6  # role markers and separators a chat template adds per message
BOUND_PER_REQUEST = 32  # a template's default system prompt and the assistant header


def _shifted(mask: np.ndarray, by: int) -> np.ndarray:
    """``mask`` moved ``by`` places right (positive) or left, padded with False."""
    import numpy as np

    out = np.zeros_like(mask)
    if by > 0:
        out[by:] = mask[:-by]
    else:
        out[:by] = mask[-by:]
    return out


def bound_tokens(text: str) -> int:
    """At least as many tokens as a byte-level BPE tokenizer of a current open model
    gives ``text`` (see the module docstring); ~10 ms a megabyte."""
    if not text:
        return 0
    # Imported here: the authorizer and health probe reach this module through the
    # upstream adapters but never count tokens, and their layer carries no numpy.
    import numpy as np

    raw = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
    upper = (raw >= 65) & (raw <= 90)
    lower = (raw >= 97) & (raw <= 122)
    letter = upper | lower
    # A piece starts a letter run, a capital after a small letter (camelCase), or the
    # last capital of a run before small letters ("HTTPServer": HTTP, Server).
    starts = letter & (
        ~_shifted(letter, 1)
        | (upper & _shifted(lower, 1))
        | (upper & _shifted(upper, 1) & _shifted(lower, -1))
    )
    space_before_word = (raw == 32) & _shifted(letter, -1)
    single = ~letter & ~space_before_word  # every other byte, ASCII or not
    letters = int(np.count_nonzero(letter))
    return (
        int(np.count_nonzero(starts))
        + int(np.count_nonzero(single))
        + math.ceil(letters / LETTERS_PER_TOKEN)
    )


def text_of_messages(messages: list[Any]) -> str:
    """All text a chat request carries, for estimates (images count as nothing here)."""
    out: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
            )
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict):
                out.append(str(call.get("function", {}).get("arguments", "")))
    return "\n".join(out)


def estimate_prompt_tokens(messages: list[Any]) -> int:
    # ~4 tokens of template overhead per message, as chat templates add role markers.
    return estimate_tokens(text_of_messages(messages)) + 4 * len(messages) + 2


def bound_prompt_tokens(messages: list[Any]) -> int:
    text = bound_tokens(text_of_messages(messages))
    return text + BOUND_PER_MESSAGE * len(messages) + BOUND_PER_REQUEST


def _input_tokens(value: Any, count: Callable[[str], int]) -> int:
    if isinstance(value, str):
        return count(value)
    if not isinstance(value, list):
        return 0
    return sum(
        count(item) if isinstance(item, str) else len(item) if isinstance(item, list) else 1
        for item in value
    )


def estimate_input_tokens(value: Any) -> int:
    """Tokens of a ``prompt`` or ``input`` field: a string, strings, token ids, or lists
    of token ids (each id one token)."""
    return _input_tokens(value, estimate_tokens)


def bound_input_tokens(value: Any) -> int:
    """``estimate_input_tokens``, as an upper bound (``bound_tokens``)."""
    return _input_tokens(value, bound_tokens)
