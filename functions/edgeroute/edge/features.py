"""What the routing heads read of a request: two sentence vectors and a few cheap signals.

The ask (the last user message) is embedded as its head and its tail: instructions sit at
the start or at the end of a prompt, and pasted material in between says little about
what is wanted. Both slices are bounded in characters and in tokens, so the cost is the
same for a 6 MB prompt as for a 2 KB one. The signals describe the shape of the request
(length, earlier context, code, math, lists, cue words); the old keyword heuristic's cues
are among them as learned inputs, not as the score.

The build (``edge_models/build/train_routing.py``) trains on exactly these vectors, so a
change here means retraining.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeroute.edge import embedder
from edgeroute.edge.complexity import complexity_features
from edgeroute.wire.tokens import estimate_tokens

HEAD_CHARS, TAIL_CHARS = 1_000, 500  # characters tokenized at each end of the ask
HEAD_TOKENS, TAIL_TOKENS = 64, 32  # pieces embedded from each end
OPENING_TOKENS = 24  # the first words, where the instruction usually is
BAG_BUCKETS = 2**15  # the pieces of both slices, hashed, for the task head's lexical cues
_BOS, _EOS = 1, 2
# Names of the scalar signals, in the order of the vector (after the two embeddings).
SIGNALS = (
    "length",
    "earlier_context",
    "turns",
    "lines",
    "length_term",
    "constraint_cues",
    "hard_cues",
    "reasoning_cues",
    "has_code",
    "has_math_notation",
    "list_items",
)
SLICES = ("ask_head", "ask_tail", "ask_opening")  # the embedding blocks, for explanations


@dataclass(frozen=True)
class Features:
    vector: np.ndarray  # [3 * 512 + len(SIGNALS)] float32
    bag: dict[int, float]  # hashed piece -> 1 + log(count), over the embedded slices
    signals: dict[str, float]
    ask_tokens: int  # exact when ``whole``, else the head's pieces plus an estimate
    whole: bool  # True when one slice holds the whole ask


@dataclass(frozen=True)
class _Slices:
    row: list[int]  # the ask, or its head and tail joined by masked gaps
    spans: list[tuple[int, int]]  # whole or head, opening, tail
    head_tokens: int  # pieces of the tokenized head (the whole ask when it is short)
    whole: bool


def _slices(ask: str) -> _Slices:
    """The ask's head, opening and tail as one row and its spans, for one inference."""
    head = embedder.pieces([ask[:HEAD_CHARS] or " "])[0]
    opening = (0, min(len(head), OPENING_TOKENS + 1))
    if len(ask) <= HEAD_CHARS and len(head) <= HEAD_TOKENS + TAIL_TOKENS:
        whole = (0, len(head))
        return _Slices(head, [whole, opening, whole], len(head), True)
    tail = embedder.pieces([ask[-TAIL_CHARS:]])[0]
    head_part = [*head[: HEAD_TOKENS + 1], _EOS]
    tail_part = [_BOS, *tail[-(TAIL_TOKENS + 1) :]]
    row = [*head_part, *[embedder.GAP] * embedder.GAP_WIDTH, *tail_part]
    spans = [(0, len(head_part)), opening, (len(row) - len(tail_part), len(row))]
    return _Slices(row, spans, len(head), False)


def _bag(row: list[int]) -> dict[int, float]:
    counts: dict[int, int] = {}
    for token in row:
        if token > _EOS:  # pieces, not <s>, </s>, <unk> or gaps
            bucket = token % BAG_BUCKETS
            counts[bucket] = counts.get(bucket, 0) + 1
    return {bucket: 1.0 + math.log(n) for bucket, n in counts.items()}


def signals(ask: str, everything: str, messages: int, tokens: int) -> dict[str, float]:
    """The scalar signals, each scaled to about [0, 1]."""
    cues = complexity_features(ask, tokens)
    newlines = ask.count("\n", 0, HEAD_CHARS * 8)
    return {
        "length": math.log1p(len(ask)) / 12.0,
        "earlier_context": math.log1p(max(len(everything) - len(ask), 0)) / 12.0,
        "turns": min(messages, 20) / 20.0,
        "lines": math.log1p(newlines) / 8.0,
        "length_term": cues["length_term"],
        "constraint_cues": min(cues["constraint_cues"], 4.0) / 4.0,
        "hard_cues": min(cues["hard_cues"], 2.0) / 2.0,
        "reasoning_cues": min(cues["reasoning_cues"], 3.0) / 3.0,
        "has_code": cues["has_code"],
        "has_math_notation": cues["has_math_notation"],
        "list_items": min(cues["list_items"], 10.0) / 10.0,
    }


def extract(ask: str, everything: str, messages: int) -> Features:
    """The heads' input for one request (blocking; a few ms, bounded for any length)."""
    sliced = _slices(ask)
    tokens = sliced.head_tokens + estimate_tokens(ask[HEAD_CHARS:])
    head, opening, tail = embedder.pooled([sliced.row], [sliced.spans])[0]
    scalars = signals(ask, everything, messages, tokens)
    vector = np.concatenate(
        [head, tail, opening, np.asarray([scalars[name] for name in SIGNALS], dtype=np.float32)]
    )
    return Features(
        vector=vector.astype(np.float32),
        bag=_bag(sliced.row),
        signals=scalars,
        ask_tokens=tokens,
        whole=sliced.whole,
    )
