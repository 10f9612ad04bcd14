"""The complexity score is defined once, in the runtime package
(``functions/edgeroute/edge/complexity.py``); the build scripts use that definition."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions"))

from edgeroute.edge.complexity import (
    DEFAULT_BASE,
    TASK_BASE,
    TIER_CUTOFFS,
    complexity_features,
    complexity_score,
    length_term,
    tier_for,
)

__all__ = [
    "DEFAULT_BASE",
    "TASK_BASE",
    "TIER_CUTOFFS",
    "complexity_features",
    "complexity_score",
    "length_term",
    "tier_for",
]
