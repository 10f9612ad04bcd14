"""The edge embedder: all-MiniLM-L6-v2, INT8 ONNX with pooling and normalisation inside
the graph, and its WordPiece tokenizer used directly (``tokenizers``, no hub)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

from edgeroute.edge.models import model_file, session

if TYPE_CHECKING:
    from edgeroute.settings import EmbedBatching

MODEL = "minilm-l6-v2"
MAX_TOKENS = 256
DIMENSIONS = 384
_batching: EmbedBatching = "per-input"  # Settings.embed_batching's default, until configure()


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


def configure(batching: EmbedBatching) -> None:
    """How a request's inputs run (``Settings.embed_batching``); see ``batched()``."""
    global _batching
    _batching = batching


def batched() -> bool:
    """Whether a request's inputs run as one padded batch (``EDGEROUTE_EMBED_BATCHING``).

    Off by default: the INT8 model quantizes activations dynamically, with one scale per
    tensor, so a text's vector depends on the other texts in its batch (measured: up to
    0.027 cosine apart for the same text). One inference per input keeps every text's
    vector the same whatever it is sent with, which caches and indexes rely on; batching
    is ~1.7x faster for 32 short texts. Set ``batched`` to trade the one for the other.
    """
    return _batching == "batched"


def embed_ids(ids: list[list[int]]) -> np.ndarray:
    """Unit-length float32 vectors [len(ids), 384]."""
    if len(ids) > 1 and not batched():
        return np.concatenate([_run([tokens]) for tokens in ids])
    return _run(ids)


def _run(ids: list[list[int]]) -> np.ndarray:
    """One inference over the given token lists (zero-padded to the longest)."""
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
