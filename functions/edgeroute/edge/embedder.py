"""The edge embedder: all-MiniLM-L6-v2, INT8 ONNX with pooling and normalisation inside
the graph, and its WordPiece tokenizer used directly (``tokenizers``, no hub)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from tokenizers import Tokenizer

from edgeroute.edge.models import model_file, session

MODEL = "minilm-l6-v2"
MAX_TOKENS = 256
DIMENSIONS = 384


@dataclass(frozen=True)
class Encoded:
    ids: list[list[int]]
    lengths: list[int]  # tokens per input after truncation
    truncated: list[bool]  # whether each input had to be cut to MAX_TOKENS


@cache
def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(model_file(MODEL, "tokenizer.json")))
    tok.no_padding()
    tok.no_truncation()  # we truncate ourselves, to know which inputs were cut
    return tok


def encode(texts: list[str]) -> Encoded:
    ids: list[list[int]] = []
    truncated: list[bool] = []
    for encoding in tokenizer().encode_batch(texts):
        tokens = list(encoding.ids)
        cut = len(tokens) > MAX_TOKENS
        if cut:
            tokens = tokens[: MAX_TOKENS - 1] + tokens[-1:]  # keep the closing [SEP]
        ids.append(tokens)
        truncated.append(cut)
    return Encoded(ids=ids, lengths=[len(t) for t in ids], truncated=truncated)


def embed_ids(ids: list[list[int]]) -> np.ndarray:
    """Unit-length float32 vectors [len(ids), 384], one batched inference (zero-padded)."""
    width = max(len(t) for t in ids)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    (vectors,) = session(MODEL).run(
        ["embeddings"], {"input_ids": input_ids, "attention_mask": mask}
    )
    return np.asarray(vectors, dtype=np.float32)


def embed(texts: list[str]) -> np.ndarray:
    return embed_ids(encode(texts).ids)


def warm() -> None:
    """Load the tokenizer and session and run once, so the first request is not the slow one."""
    embed(["warm up"])
