"""Where the edge model files live and how their ONNX sessions are made.

Locally that is the repository's ``edge_models/``; on Lambda the edge-models layer
puts them under ``/opt/edge_models``. ``configure()`` (from the settings'
``EDGEROUTE_EDGE_MODELS``, ``EDGEROUTE_EDGE_THREADS`` and ``EDGEROUTE_EMBED_BATCHING``)
overrides both and sets the threads and batching. Sessions are created once per process
and kept: on a snapshotted Lambda init that happens during init, so SnapStart snapshots
them warm. This module imports onnxruntime only to make a session, so configuring the
edge costs a process nothing until a model runs.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime as ort

    from edgeroute.settings import EmbedBatching

_REPO_MODELS = Path(__file__).resolve().parents[3] / "edge_models"
_LAYER_MODELS = Path("/opt/edge_models")
# Settings.edge_models', .edge_threads' and .embed_batching's defaults, until configure().
_configured_dir: Path | None = None
_threads = 1
_batching: EmbedBatching = "per-input"


def configure(folder: Path | None, threads: int, batching: EmbedBatching = "per-input") -> None:
    """Set the models' folder (None: the repository's, else the layer's), each
    session's threads and how the embedder batches a request's inputs; once at init,
    before the first session, which is kept."""
    global _configured_dir, _threads, _batching
    _configured_dir, _threads, _batching = folder, threads, batching


def embed_batched() -> bool:
    """Whether a request's inputs run as one padded batch (``EDGEROUTE_EMBED_BATCHING``).

    The vectors are the same either way (fp32 products, padding masked); one padded
    batch is faster for many short texts, one inference per input wastes no work on
    padding when lengths differ widely.
    """
    return _batching == "batched"


def models_dir() -> Path:
    if _configured_dir is not None:
        return _configured_dir
    return _REPO_MODELS if _REPO_MODELS.is_dir() else _LAYER_MODELS


def model_file(model: str, name: str) -> Path:
    path = models_dir() / model / name
    if not path.is_file():
        raise FileNotFoundError(
            f"edge model file {path} is missing: set EDGEROUTE_EDGE_MODELS to the folder "
            "holding the edge models (the repository's edge_models/ or the Lambda layer's)"
        )
    return path


def intra_op_threads() -> int:
    return _threads


@cache
def session(model: str, name: str = "model.onnx") -> ort.InferenceSession:
    """One session per model file per process, on CPU, with few threads: Lambda gives a
    function one or two vCPUs and concurrent requests are better served than one fast one."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(model_file(model, name)), options, providers=["CPUExecutionProvider"]
    )
