"""Per-minute limits slide: a key allowed 50 requests a minute cannot send 100 in a few
seconds around a window's edge (with fixed windows it could: 50 at :59, 50 at :01)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import RateLimited
from edgeroute.pipeline import admit as admit_stage
from edgeroute.store.base import ApiKey, KeyLimits
from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.types import Kind

MODEL = ModelSpec.model_validate(
    {"name": "m", "protocol": "openai", "endpoint": "http://m:1/v1", "tier": "small"}
)
MINUTE = 1_800_000_000 // 60 * 60  # a window start


async def _admitted(store: SQLiteStore, key: ApiKey, at: float, tries: int) -> int:
    count = 0
    for _ in range(tries):
        try:
            await admit_stage.admit(store, key, Kind.CHAT, MODEL, {"max_tokens": 1}, 5)
        except RateLimited:
            continue
        count += 1
    return count


def _setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rpm: int, at: float
) -> tuple[SQLiteStore, ApiKey, dict[str, float]]:
    """A fresh store, a key with ``rpm``, and a clock the admit stage reads."""
    admit_stage._CLOSED_WINDOWS.clear()
    _, key = mint_key("k", limits=KeyLimits(rpm=rpm))
    clock = {"now": at}
    monkeypatch.setattr("edgeroute.pipeline.admit.time.time", lambda: clock["now"])
    return SQLiteStore(tmp_path / "edgeroute.db"), key, clock


async def test_fifty_a_minute_never_admits_a_hundred_across_the_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, key, clock = _setup(tmp_path, monkeypatch, 50, MINUTE + 58.0)
    assert await _admitted(store, key, clock["now"], 60) == 50
    clock["now"] = MINUTE + 61.0  # one second into the next window
    assert await _admitted(store, key, clock["now"], 60) == 0
    clock["now"] = MINUTE + 60 + 45.0  # a quarter of the last minute still counts
    assert await _admitted(store, key, clock["now"], 60) == 50 - 13  # ceil(50 * 0.25)
    clock["now"] = MINUTE + 120 + 59.0  # a second before the next edge: 1/60 of 37 left
    assert await _admitted(store, key, clock["now"], 60) == 50 - 1  # ceil(37 / 60)
    await store.close()


async def test_refusal_says_what_the_sliding_minute_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, key, clock = _setup(tmp_path, monkeypatch, 2, MINUTE + 59.0)
    await _admitted(store, key, clock["now"], 2)
    clock["now"] = MINUTE + 62.0
    with pytest.raises(RateLimited) as refused:
        await admit_stage.admit(store, key, Kind.CHAT, MODEL, {"max_tokens": 1}, 5)
    assert "2 requests per minute, 2 used in the last 60 s" in refused.value.message
    await store.close()
