"""Add the shipped INT8 model's own vectors to reference.json (run after eval_embedder.py).

Why: reference.json holds fp32 vectors, against which INT8 reaches only ~0.98 cosine on
the shortest sentences, a property of the quantized model (recorded in card.yaml). A
run-time regression check needs vectors of the model that ships: the gateway's
embeddings must reproduce these to cosine >= 0.99, which catches a changed tokenizer,
pooling or onnxruntime behaviour. Vectors are computed one sentence per inference,
as the gateway computes them by default. Needs only the runtime packages.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml
from tokenizers import Tokenizer

EMBEDDER_DIR = Path(__file__).resolve().parents[1] / "minilm-l6-v2"
INT8_MIN_COSINE = 0.99


def main() -> None:
    reference_path = EMBEDDER_DIR / "reference.json"
    reference = json.loads(reference_path.read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(EMBEDDER_DIR / "tokenizer.json"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(EMBEDDER_DIR / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    for item in reference["items"]:
        ids = np.array([tokenizer.encode(item["text"]).ids], dtype=np.int64)
        (vector,) = session.run(
            ["embeddings"], {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        )
        item["int8_embedding"] = [round(float(v), 6) for v in vector[0]]
    reference["int8_min_cosine"] = INT8_MIN_COSINE
    reference["description"] += (
        " int8_embedding holds the shipped INT8 model's own vectors (one sentence per "
        "inference): the gateway must reproduce them to cosine >= int8_min_cosine."
    )
    text = json.dumps(reference, ensure_ascii=False, separators=(",", ":")) + "\n"
    reference_path.write_text(text, encoding="utf-8")
    card_path = EMBEDDER_DIR / "card.yaml"
    card = yaml.safe_load(card_path.read_text(encoding="utf-8"))
    data = reference_path.read_bytes()
    scripts = card["build"]["scripts"]
    if "edge_models/build/reference_int8.py" not in scripts:
        scripts.append("edge_models/build/reference_int8.py")
    card["files"]["reference.json"] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    card_path.write_text(
        yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=105), encoding="utf-8"
    )
    print(f"reference.json: {len(reference['items'])} INT8 vectors added")


if __name__ == "__main__":
    main()
