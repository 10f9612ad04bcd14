"""The pipeline's measured steps: wrappers that time a stage for the metrics and give it
a span (``observe/tracing``), so the stages themselves stay as they are."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgeroute.edge.classifier import Classification
from edgeroute.observe import tracing
from edgeroute.pipeline import metrics

Classifier = Callable[[dict[str, Any]], Classification]


def classify_measured(classify: Classifier, payload: dict[str, Any]) -> Classification:
    """``classify(payload)`` (the edge classifier), with its time as ``EdgeInferenceMs``."""
    started = time.perf_counter()
    try:
        with tracing.span(tracing.CLASSIFY):
            return classify(payload)
    finally:
        metrics.edge_inference((time.perf_counter() - started) * 1000)
