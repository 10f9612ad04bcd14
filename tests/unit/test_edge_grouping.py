"""A batch job's edge moderation lines in flight run as one inference (``GROUP_EDGE``),
as its embeddings lines do: each request still gets the results it would get alone and
its own ledger line."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import edgeroute.edge.moderation as moderation
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.moderate import moderate, moderate_groups
from edgeroute.types import Kind
from edgeroute.upstreams.grouping import GROUP_EDGE
from tests.support.inprocess import add_key, ledger, memory_gateway

REGISTRY = """
models:
  - {name: moderator, protocol: edge, tier: edge, capabilities: [moderation],
     context_window: 100000}
"""
TEXTS = [
    "I will hurt you badly tomorrow.",
    "What a lovely morning for a walk.",
    "You are a worthless idiot and everyone hates you.",
    "The recipe needs two eggs and some flour.",
]


def test_grouped_texts_score_as_they_do_alone() -> None:
    requests = [[TEXTS[0]], [TEXTS[1], TEXTS[2]], [TEXTS[3]]]
    grouped = moderate_groups(requests)
    alone = [moderation.moderate(texts) for texts in requests]
    for together, single in zip(grouped, alone, strict=True):
        assert not isinstance(together, Exception)
        for a, b in zip(together, single, strict=True):
            assert a["flagged"] == b["flagged"] and a["categories"] == b["categories"]
            scores_a: Any = a["category_scores"]
            scores_b: Any = b["category_scores"]
            for name, score in scores_b.items():
                assert scores_a[name] == pytest.approx(score, abs=1e-4)


async def test_moderation_lines_in_flight_run_as_one_inference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gw = memory_gateway(REGISTRY)
    _, key = await add_key(gw)
    inferences: list[int] = []
    real = moderation.moderate

    def counted(texts: list[str]) -> list[dict[str, object]]:
        inferences.append(len(texts))
        return real(texts)

    monkeypatch.setattr(moderation, "moderate", counted)
    started = time.time()

    async def one(i: int) -> Any:
        call = Call(
            request_id=f"req_{i}",
            principal=key,
            kind=Kind.MODERATIONS,
            payload={"model": "moderator", "input": TEXTS[i % len(TEXTS)]},
        )
        return await moderate(gw, call)

    token = GROUP_EDGE.set(True)
    try:
        answers = await asyncio.gather(*(one(i) for i in range(12)))
    finally:
        GROUP_EDGE.reset(token)
    assert sum(inferences) == 12 and len(inferences) < 12, inferences
    alone = await one(0)  # not grouped: its own inference
    assert inferences[-1] == 1
    assert answers[0]["results"][0]["flagged"] == alone["results"][0]["flagged"]
    assert [a["results"][0]["flagged"] for a in answers[:4]] == [r["flagged"] for r in real(TEXTS)]
    assert len(await ledger(gw, started)) == 13  # one line per request, grouped or not
