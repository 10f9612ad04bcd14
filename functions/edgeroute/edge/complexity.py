"""Cheap cue counts of a prompt, a few of the signals the learned tier head reads.

These were once the whole complexity score (hand-set weights; Spearman 0.33 against held-out
tier labels). Now they are inputs among others (``features.py``), weighted by training on
tier labels. Every pattern runs in linear time and reads a bounded head and tail, so the
cost is the same for any prompt length.
"""

from __future__ import annotations

import math
import re

CONSTRAINT_PATTERN = re.compile(
    r"\b(?:must|should|at least|at most|exactly|no more than|without|under \d+|max(?:imum)?"
    r"|min(?:imum)?|only|keep|ensure|include|avoid|preserv\w*|in (?:the )?style of"
    r"|\d+\s*(?:words|lines|sentences|bullets?|points|pages|paragraphs|chars|characters))\b"
    r"|至少|不超过|必须|要求|mindestens|höchstens|muss|au moins|au plus|doit|как минимум"
    r"|не более|должен|al menos|como máximo|debe|pelo menos|no máximo|deve",
    re.IGNORECASE,
)
HARD_PATTERN = re.compile(
    r"\b(?:prove|proof|show that|distributed|race conditions?|deadlocks?|concurren\w*"
    r"|system design|architect\w*|trade-?offs?|synthesi[sz]\w*|contradictions?|olympiad"
    r"|competition|liability|lawsuit|diagnos\w*|contraindicat\w*|fiduciary)\b"
    r"|证明|beweise|démontre\w*|докаж\w*|demuestra\w*|prove que|अनुबंध",
    re.IGNORECASE,
)
REASONING_PATTERN = re.compile(
    r"\b(?:explain|why|compare|contrast|analy[sz]e|analysis|optimi[sz]e|debug|edge cases?"
    r"|step[- ]by[- ]step|evaluate|justify|derive|design|implement|refactor|how does)\b"
    r"|分析|设计|比较|为什么|analysiere|vergleiche|warum|analyse[zr]?|pourquoi|сравни|почему"
    r"|analiza|compara|por qué|por que|analise",
    re.IGNORECASE,
)
# Every pattern runs in linear time on any text: no unbounded quantifier sits before
# another that could match the same characters (`\w+\(.*\)` took 26 s on 80 KB of "a").
CODE_PATTERN = re.compile(
    r"```|\bdef \w+\(|\bclass \w+|\bfunction\b|=>|\breturn\b|#include|\bimport \w+"
    r"|\bSELECT\b[^\n]{1,500}?\bFROM\b|[{};][ \t]*$|\b\w{1,64}\([^\n]{0,200}?\)[ \t]*[:{]",
    re.IGNORECASE | re.MULTILINE,
)
# \u00d7 below is the multiplication sign, which users do type.
MATH_PATTERN = re.compile(
    r"[\^√∫∑≤≥≠∞]|\\(?:frac|int|sum|sqrt)|\blim\b|\bsum_|\bd[xy]/d[xy]\b|\b\d+\s*[x\u00d7*/]\s*\d+"
    r"|\b[a-z]\s*=\s*[-\d]|\bmatrix\b|\bintegral\b|\bderivative\b"
)
LIST_ITEM_PATTERN = re.compile(r"^[ \t]*(?:[-*•]|\d{1,4}[.)]|\(\w\))[ \t]+", re.MULTILINE)
# The heuristics read at most this much of a prompt: its head and its tail.
HEAD_CHARS, TAIL_CHARS = 1_000, 500  # the slices features.py embeds


def bounded(text: str) -> str:
    """The head and tail of a long text, which the cues are counted in."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def length_term(tokens: int) -> float:
    """0 at 16 tokens or fewer, 1 at 512 tokens or more, log-linear between."""
    if tokens <= 16:
        return 0.0
    return min(1.0, math.log2(tokens / 16) / math.log2(512 / 16))


def complexity_features(text: str, tokens: int) -> dict[str, float]:
    """The signals the score is made of, for explanations (x-edgeroute-* headers)."""
    text = bounded(text)
    return {
        "length_term": length_term(tokens),
        "constraint_cues": float(len(CONSTRAINT_PATTERN.findall(text))),
        "hard_cues": float(len(HARD_PATTERN.findall(text))),
        "reasoning_cues": float(len(REASONING_PATTERN.findall(text))),
        "has_code": 1.0 if CODE_PATTERN.search(text) else 0.0,
        "has_math_notation": 1.0 if MATH_PATTERN.search(text) else 0.0,
        "list_items": float(len(LIST_ITEM_PATTERN.findall(text))),
    }
