"""The request complexity score in [0, 1]: one definition, used by the gateway and by
the build scripts that check it against labelled prompts.

Why: routing picks a model tier (small / medium / large, see shared/design.md) from the task
type and how demanding the prompt is. A learned regressor would need thousands of
tier-labelled prompts we do not have, so the score is a transparent heuristic of cheap
signals the runtime already has (token count from the embedder's tokenizer, the predicted
task) plus a few regular expressions. Weights follow the tier definitions in
shared/design.md: proofs, system design, concurrency and multi-document synthesis
("hard cues") push toward large; explanations, comparisons and functions to implement
("reasoning cues"), explicit constraints, code, math notation and length push toward
medium. The definition is also written to ``edge_models/task-classifier/card.yaml`` with
example scores. The weights are set by hand, not fitted: against held-out tier labels
the score correlates only weakly (Spearman 0.33), so routing treats it as a rough order.

score = clip(task_base[task]
             + 0.30 * length_term
             + 0.06 * min(constraint_cues, 4)
             + 0.20 * min(hard_cues, 2)
             + 0.08 * min(reasoning_cues, 2)
             + 0.08 * has_code
             + 0.06 * has_math_notation
             + 0.08 * min(max(list_items - 1, 0), 5) / 5, 0, 1)

length_term = clip(log2(tokens / 16) / log2(512 / 16), 0, 1): 16 tokens or fewer count 0,
512 tokens count 1 (tokens = ids from tokenizer.json, [CLS]/[SEP] included, no truncation).
Suggested tier cut-offs: score < 0.35 small, < 0.60 medium, else large.
"""

from __future__ import annotations

import math
import re

TASK_BASE: dict[str, float] = {
    "chat": 0.10,
    "classify": 0.12,
    "translate": 0.15,
    "extract": 0.18,
    "qa": 0.20,
    "summarize": 0.22,
    "creative": 0.22,
    "math": 0.25,
    "code": 0.28,
}
DEFAULT_BASE = 0.20
TIER_CUTOFFS = {"small": 0.35, "medium": 0.60}

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
HEAD_CHARS, TAIL_CHARS = 12_000, 4_000


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


def complexity_score(text: str, tokens: int, task: str) -> float:
    """Complexity in [0, 1], rounded to 3 decimals."""
    features = complexity_features(text, tokens)
    score = (
        TASK_BASE.get(task, DEFAULT_BASE)
        + 0.30 * features["length_term"]
        + 0.06 * min(features["constraint_cues"], 4.0)
        + 0.20 * min(features["hard_cues"], 2.0)
        + 0.08 * min(features["reasoning_cues"], 2.0)
        + 0.08 * features["has_code"]
        + 0.06 * features["has_math_notation"]
        + 0.08 * min(max(features["list_items"] - 1.0, 0.0), 5.0) / 5.0
    )
    return round(min(1.0, max(0.0, score)), 3)


def tier_for(score: float) -> str:
    """Tier suggested by the score alone (the routing policy may override it)."""
    if score < TIER_CUTOFFS["small"]:
        return "small"
    if score < TIER_CUTOFFS["medium"]:
        return "medium"
    return "large"
