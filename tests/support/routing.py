"""The router's decision for a plain ``auto`` request, for tests that only vary the body."""

from __future__ import annotations

import time

from edgeroute.config.policy import load_policy
from edgeroute.config.registry import Registry
from edgeroute.edge.classifier import Classification
from edgeroute.pipeline.autoroute import Decision, Limits, decide
from edgeroute.store.base import ApiKey
from edgeroute.types import Json, Kind


def decide_auto(
    registry: Registry, key: ApiKey, payload: Json, *, kind: Kind = Kind.CHAT, prompt_tokens: int
) -> Decision:
    """``model: auto`` for an easy text chat: no health, no cost limits."""
    easy = Classification(
        task="chat",
        complexity=0.1,
        known_language="en",
        prompt_tokens=prompt_tokens,
        modality=("text",),
    )
    return decide(
        name="auto",
        kind=kind,
        payload=payload,
        c=easy,
        registry=registry,
        policy=load_policy(),
        principal=key,
        health={},
        limits=Limits(),
        now=time.time(),
    )
