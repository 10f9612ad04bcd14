"""The edge embedder: Google's universal-sentence-encoder-multilingual v3 as ONNX, with
its SentencePiece tokenizer (16 languages, 512-d unit vectors).

Its weights are quantized weight-only (6-bit embedding table, fp16 dense weights widened
at load) and every product runs in fp32, so a text's vector is the same on every CPU and
whatever it is batched with (padding is masked out: measured 1.3e-7 apart). It reads
text in any length (a deep averaging network has no position limit); MAX_TOKENS bounds
the work one input may ask for.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import sentencepiece

from edgeroute.edge.models import embed_batched, model_file, session

MODEL = "use-multilingual"
MAX_TOKENS = 512
GAP = -1  # a masked position between two texts in one row (see pooled())
GAP_WIDTH = 2  # the widest n-gram reaches two tokens to either side
DIMENSIONS = 512


@dataclass(frozen=True)
class Encoded:
    ids: list[list[int]]
    lengths: list[int]  # tokens per input after truncation
    truncated: list[bool]  # whether each input had to be cut to MAX_TOKENS


@cache
def tokenizer() -> sentencepiece.SentencePieceProcessor:
    return sentencepiece.SentencePieceProcessor(model_file=str(model_file(MODEL, "spm.model")))


def pieces(texts: list[str]) -> list[list[int]]:
    """Token ids with <s> and </s>, untruncated."""
    return [list(ids) for ids in tokenizer().encode(texts, add_bos=True, add_eos=True)]


def encode(texts: list[str]) -> Encoded:
    ids: list[list[int]] = []
    truncated: list[bool] = []
    for tokens in pieces(texts):
        cut = len(tokens) > MAX_TOKENS
        if cut:
            tokens = tokens[: MAX_TOKENS - 1] + tokens[-1:]  # keep the closing </s>
        ids.append(tokens)
        truncated.append(cut)
    return Encoded(ids=ids, lengths=[len(t) for t in ids], truncated=truncated)


def embed_ids(ids: list[list[int]]) -> np.ndarray:
    """Unit-length float32 vectors [len(ids), 512]."""
    if len(ids) > 1 and not embed_batched():
        return np.concatenate([_run([tokens]) for tokens in ids])
    return _run(ids)


def embed_together(ids: list[list[int]]) -> np.ndarray:
    """Unit-length vectors of every token list, in one padded inference whatever
    ``EDGEROUTE_EMBED_BATCHING`` says (the grouped lines of a batch job)."""
    return _run(ids)


def _run(ids: list[list[int]]) -> np.ndarray:
    """One inference over the given token lists (zero-padded to the longest)."""
    return pooled(ids, [[(0, len(tokens))] for tokens in ids])[:, 0]


def pooled(rows: list[list[int]], spans: list[list[tuple[int, int]]]) -> np.ndarray:
    """Vectors of token spans [len(rows), most spans, 512] in one inference.

    Each row is a token list; each of its spans (start, end) is pooled into a vector of
    its own, every token's features computed once in the context of its whole row. A
    token ``GAP`` is masked out: the n-gram windows read it as the end of a text, so two
    texts joined by ``GAP_WIDTH`` gaps are read as if they ran apart. A row with fewer
    spans than the others gets zero vectors in the gap.
    """
    width = max(len(t) for t in rows)
    count = max(len(s) for s in spans)
    input_ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    segments = np.zeros((len(rows), count, width), dtype=np.float32)
    for row, tokens in enumerate(rows):
        ids = np.asarray(tokens, dtype=np.int64)
        input_ids[row, : len(tokens)] = np.maximum(ids, 0)
        mask[row, : len(tokens)] = ids != GAP
        for index, (start, end) in enumerate(spans[row]):
            segments[row, index, start:end] = 1.0
    (vectors,) = session(MODEL).run(
        ["embedding"], {"input_ids": input_ids, "attention_mask": mask, "segments": segments}
    )
    out = np.asarray(vectors, dtype=np.float32)
    for row, row_spans in enumerate(spans):
        out[row, len(row_spans) :] = 0.0
    return out


def embed(texts: list[str]) -> np.ndarray:
    return embed_ids(encode(texts).ids)


def warm() -> None:
    """Load the tokenizer and session and run once, so the first request is not the slow one."""
    embed(["warm up"])
