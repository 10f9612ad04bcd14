"""Token estimates for when no tokenizer answers: context checks, reservations, and
usage for upstreams that report none (such usage is marked estimated in the ledger).

About four characters per token for Latin-script text, one per character for CJK,
which is what BPE tokenizers of current open models average on ordinary prose.
"""

from __future__ import annotations

import math
from typing import Any


def _is_wide(ch: str) -> bool:
    code = ord(ch)
    return 0x2E80 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF or 0xF900 <= code <= 0xFAFF


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    wide = sum(1 for ch in text if _is_wide(ch)) if not text.isascii() else 0
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
