"""Moderation at the edge: an offensive-language score for English text.

The model is alt-profanity-check's word TF-IDF + calibrated linear SVM, converted to
ONNX (tokenisation in the graph). It scores one category, offensive language
(profanity, insults, abuse), reported as OpenAI's ``harassment`` category; it does
not score hate without profanity, self-harm, sexual content or threats, and it reads
English only (see ``edge_models/moderation/card.yaml``).
"""

from __future__ import annotations

import numpy as np

from edgeroute.edge.models import session

MODEL = "moderation"
THRESHOLD = 0.5  # the model's own calibrated cut


def offensive_scores(texts: list[str]) -> list[float]:
    """Probability that each text is offensive, one batched run."""
    _, probabilities = session(MODEL).run(None, {"text": np.array(texts, dtype=object)})
    return [float(p[1]) for p in np.asarray(probabilities)]


def moderation_result(score: float) -> dict[str, object]:
    flagged = score >= THRESHOLD
    return {
        "flagged": flagged,
        "categories": {"harassment": flagged},
        "category_scores": {"harassment": round(score, 6)},
        "category_applied_input_types": {"harassment": ["text"]},
    }
