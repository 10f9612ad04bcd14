"""A named-model request is classified only once it is answered (the default,
EDGEROUTE_CLASSIFY=background: after the answer, for the ledger) or admitted (``always``:
beside the upstream call, for the headers too): requests refused by the cheap checks
(unknown model, quota) never pay for it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from edgeroute.edge.classifier import Classification
from edgeroute.pipeline.deferred import DeferredClassifier
from edgeroute.pipeline.gateway import Gateway
from edgeroute.store.base import KeyLimits
from edgeroute.types import Json
from tests.support.inprocess import Client, add_key, ledger, memory_gateway
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


def background_gateway(seen: list[Json], *, capacity: int = 16) -> Gateway:
    """The default mode, with a classifier that calls every request's task "code"."""

    def classify(payload: Json) -> Classification:
        seen.append(payload)
        return Classification(task="code", complexity=0.25, prompt_tokens=3, modality=())

    gw = memory_gateway(REGISTRY)
    gw = replace(gw, settings=gw.settings.model_copy(update={"classify": "background"}))
    gw.deferred = DeferredClassifier(classify, capacity=capacity)
    return gw


@pytest.mark.parametrize("stream", [False, True])
async def test_by_default_the_ledger_gets_the_classification_and_the_answer_no_header(
    upstream: ScriptedUpstream, stream: bool
) -> None:
    seen: list[Json] = []
    gw = background_gateway(seen)
    secret, _ = await add_key(gw)

    response = await Client(gw, secret).chat("named", stream=stream)

    assert response.status_code == 200
    assert "x-edgeroute-task" not in response.headers
    (line,) = await ledger(gw)
    assert (line.model, line.task, line.complexity) == ("named", "code", 0.25)
    assert len(seen) == 1


async def test_by_default_a_refused_request_is_never_classified(
    upstream: ScriptedUpstream,
) -> None:
    seen: list[Json] = []
    gw = background_gateway(seen)
    secret, _ = await add_key(gw, limits=KeyLimits(rpm=1))
    client = Client(gw, secret)

    first, second = await client.chat("named"), await client.chat("no-such-model")

    assert (first.status_code, second.status_code) == (200, 404)
    assert len(seen) == 1


async def test_a_shed_classification_still_leaves_its_ledger_line(
    upstream: ScriptedUpstream,
) -> None:
    seen: list[Json] = []
    gw = background_gateway(seen, capacity=0)  # every classification is shed
    secret, _ = await add_key(gw)

    response = await Client(gw, secret).chat("named")

    assert response.status_code == 200
    (line,) = await ledger(gw)
    assert (line.model, line.status, line.task, line.complexity) == ("named", 200, "", None)
    assert seen == [] and gw.deferred.shed == 1
