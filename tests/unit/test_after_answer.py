"""Ledger lines after the answer: under `edgeroute serve`'s lifespan a stream ends
without waiting for its ledger line (whose classification is computed after the answer),
and the lifespan's end writes every line still pending, so a shutdown loses none.
Without a lifespan (Lambda's Mangum handler, batch runs) or on Lambda the line is
written before the call ends, as before."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import pytest

from edgeroute.edge.classifier import Classification
from edgeroute.pipeline.after_answer import AfterAnswer
from edgeroute.pipeline.deferred import DeferredClassifier
from edgeroute.pipeline.gateway import Gateway
from edgeroute.types import Json
from tests.support.inprocess import Client, add_key, ledger, memory_gateway, sse_events
from tests.support.scripted_upstream import ScriptedUpstream

REGISTRY = """
models:
  - {name: named, endpoint: 'http://named:1/v1', tier: small, retries: 0}
"""


class Gate:
    """A classifier that holds each classification until opened (from another thread)."""

    def __init__(self) -> None:
        self.opened = threading.Event()

    def __call__(self, payload: Json) -> Classification:
        assert self.opened.wait(10)
        return Classification(task="chat", complexity=0.5, prompt_tokens=1, modality=())


def gated_gateway(gate: Gate) -> Gateway:
    gw = memory_gateway(REGISTRY)
    gw = replace(gw, settings=gw.settings.model_copy(update={"classify": "background"}))
    gw.deferred = DeferredClassifier(gate, capacity=16, share=1.0, burst_s=10.0)
    return gw


async def lifespan_client(gw: Gateway) -> Client:
    """A client of a new key, on the app whose lifespan the test runs."""
    secret, _ = await add_key(gw)
    return Client(gw, secret)


async def test_a_stream_ends_before_its_ledger_line_and_shutdown_writes_every_line(
    upstream: ScriptedUpstream,
) -> None:
    gate = Gate()
    gw = gated_gateway(gate)
    client = await lifespan_client(gw)

    async with client.app.router.lifespan_context(client.app):
        responses = await asyncio.wait_for(
            asyncio.gather(*(client.chat("named", stream=True) for _ in range(3))), 5
        )
        assert [sse_events(r.text)[-1] for r in responses] == ["[DONE]"] * 3
        assert await ledger(gw) == []  # the classifications still wait
        assert gw.after_answer.running == 3
        threading.Timer(0.2, gate.opened.set).start()  # lets one finish; the rest are shed
    # The lifespan ended: every pending line was written, none lost.
    lines = await ledger(gw)
    assert len(lines) == 3 and all(line.status == 200 for line in lines)
    assert gw.after_answer.running == 0


async def test_without_a_lifespan_the_line_is_written_before_the_call_ends(
    upstream: ScriptedUpstream,
) -> None:
    gate = Gate()
    gate.opened.set()
    gw = gated_gateway(gate)
    secret, _ = await add_key(gw)

    response = await Client(gw, secret).chat("named", stream=True)

    assert sse_events(response.text)[-1] == "[DONE]"
    lines = await ledger(gw)
    assert len(lines) == 1 and lines[0].task == "chat"


async def test_with_every_slot_taken_the_work_runs_inline() -> None:
    after = AfterAnswer()
    after.open(capacity=1)
    release = asyncio.Event()
    done: list[str] = []

    async def held() -> None:
        await release.wait()
        done.append("held")

    async def quick() -> None:
        done.append("quick")

    await after.run(held())
    await after.run(quick())  # the one slot is taken: this ran before returning
    assert done == ["quick"] and after.running == 1
    release.set()
    await after.close()
    assert done == ["quick", "held"] and after.running == 0


async def test_on_lambda_the_lifespan_keeps_lines_inline(
    upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "StreamFunction")
    gate = Gate()
    gate.opened.set()
    gw = gated_gateway(gate)
    client = await lifespan_client(gw)

    async with client.app.router.lifespan_context(client.app):
        response = await client.chat("named", stream=True)
        assert sse_events(response.text)[-1] == "[DONE]"
        assert len(await ledger(gw)) == 1  # written before the stream ended
        assert gw.after_answer.running == 0
