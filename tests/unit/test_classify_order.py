"""With EDGEROUTE_CLASSIFY=always, a named-model request is classified only once it is
admitted: requests refused by the cheap checks (unknown model, quota) never pay for it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from edgeroute.pipeline.gateway import Gateway
from edgeroute.store.base import KeyLimits
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import ScriptedUpstream

REGISTRY = """
models:
  - {name: named, endpoint: 'http://named:1/v1', tier: small, retries: 0}
"""


async def settled(seen: list[Any]) -> list[Any]:
    """What the classifier saw, once a classification started on a worker thread has had
    time to run (0.3 s: a regression shows at once; absence costs the wait)."""
    for _ in range(30):
        if seen:
            break
        await asyncio.sleep(0.01)
    return seen


def classifying_gateway() -> Gateway:
    gw = memory_gateway(REGISTRY)
    return replace(gw, settings=gw.settings.model_copy(update={"classify": "always"}))


@pytest.fixture
def classified(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Payloads the classifier was asked about (it fails, which only drops the headers)."""
    seen: list[Any] = []

    def classify(payload: Any) -> Any:
        seen.append(payload)
        raise RuntimeError("no classifier in unit tests")

    monkeypatch.setattr("edgeroute.pipeline.run.classify", classify)
    return seen


async def test_an_answered_request_is_classified_once(
    classified: list[Any], upstream: ScriptedUpstream
) -> None:
    gw = classifying_gateway()
    secret, _ = await add_key(gw)

    response = await Client(gw, secret).chat("named")

    assert response.status_code == 200
    assert len(await settled(classified)) == 1


async def test_an_unknown_model_is_refused_before_classification(
    classified: list[Any],
) -> None:
    gw = classifying_gateway()
    secret, _ = await add_key(gw)

    response = await Client(gw, secret).chat("no-such-model")

    assert response.status_code == 404
    assert await settled(classified) == []


async def test_a_request_over_its_quota_is_refused_before_classification(
    classified: list[Any], upstream: ScriptedUpstream
) -> None:
    gw = classifying_gateway()
    secret, _ = await add_key(gw, limits=KeyLimits(rpm=1))
    client = Client(gw, secret)

    first, second = await client.chat("named"), await client.chat("named")

    assert (first.status_code, second.status_code) == (200, 429)
    assert len(await settled(classified)) == 1
