"""Token estimates for when no tokenizer answers: context checks, reservations, and
usage for upstreams that report none (such usage is marked estimated in the ledger).

About four characters per token for Latin-script text, one per character for CJK,
which is what BPE tokenizers of current open models average on ordinary prose.
"""

from __future__ import annotations

import math
import re
from typing import Any

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


def estimate_input_tokens(value: Any) -> int:
    """Tokens of a ``prompt`` or ``input`` field: a string, strings, token ids, or lists
    of token ids (each id one token)."""
    if isinstance(value, str):
        return estimate_tokens(value)
    if not isinstance(value, list):
        return 0
    return sum(
        estimate_tokens(item)
        if isinstance(item, str)
        else len(item)
        if isinstance(item, list)
        else 1
        for item in value
    )
