"""The deferred classifier: named models' ledger classification after the answer, in a
bounded queue that sheds (never queues without limit) and closes cleanly."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from edgeroute.edge.classifier import Classification
from edgeroute.pipeline.deferred import DeferredClassifier
from edgeroute.types import Json


def labelled(payload: Json) -> Classification:
    """A classification that names its payload, to match answers with requests."""
    return Classification(task=str(payload["n"]), complexity=0.5, prompt_tokens=1, modality=())


class Gate:
    """A classifier that blocks on a worker thread until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.started = threading.Event()
        self.seen: list[Any] = []

    def __call__(self, payload: Json) -> Classification:
        self.seen.append(str(payload["n"]))
        self.started.set()
        assert self.opened.wait(5)
        return labelled(payload)


async def test_low_load_classifies_every_request_each_with_its_own_answer() -> None:
    deferred = DeferredClassifier(labelled)

    results = await asyncio.gather(*(deferred.submit({"n": n}) for n in range(5)))

    assert [r.task if r else None for r in results] == ["0", "1", "2", "3", "4"]
    assert (deferred.classified, deferred.shed) == (5, 0)


async def test_a_full_queue_sheds_at_once_instead_of_growing() -> None:
    gate = Gate()
    deferred = DeferredClassifier(gate, capacity=2)

    futures = [deferred.submit({"n": n}) for n in range(6)]
    await asyncio.to_thread(gate.started.wait, 5)  # one running, one waiting

    shed = [f for f in futures if f.done()]
    assert len(shed) == 4 and all(f.result() is None for f in shed)
    assert deferred.shed == 4
    gate.opened.set()
    answered = [await f for f in futures if f not in shed]
    assert sorted(a.task for a in answered if a) == sorted(gate.seen)
    assert len(gate.seen) == 2


async def test_past_its_time_share_it_sheds_then_recovers() -> None:
    now = [0.0]

    def slow(payload: Json) -> Classification:
        now[0] += 0.2  # each classification takes 0.2 s of the clock
        return labelled(payload)

    deferred = DeferredClassifier(slow, share=0.25, burst_s=0.1, clock=lambda: now[0])

    first = await deferred.submit({"n": 1})
    second = await deferred.submit({"n": 2})  # 0.2 s spent of 0.1 s credit: over budget
    now[0] += 1.0  # a quiet second refills 0.25 s
    third = await deferred.submit({"n": 3})

    assert first is not None and second is None and third is not None
    assert (deferred.classified, deferred.shed) == (2, 1)


async def test_a_failing_classifier_costs_only_the_classification() -> None:
    def broken_once(payload: Json) -> Classification:
        if payload["n"] == 1:
            raise RuntimeError("no model")
        return labelled(payload)

    deferred = DeferredClassifier(broken_once)

    assert await deferred.submit({"n": 1}) is None
    after = await deferred.submit({"n": 2})  # the worker goes on with the next
    assert after is not None and after.task == "2"
    assert deferred.shed == 0


async def test_close_sheds_what_waits_and_lets_the_running_one_finish() -> None:
    gate = Gate()
    deferred = DeferredClassifier(gate, capacity=4)
    futures = [deferred.submit({"n": n}) for n in range(3)]
    await asyncio.to_thread(gate.started.wait, 5)

    closing = asyncio.ensure_future(deferred.close())
    await asyncio.sleep(0)
    waiting = futures[1:]
    assert all(f.done() and f.result() is None for f in waiting)
    assert not closing.done()  # the running classification is not cut off
    gate.opened.set()
    await asyncio.wait_for(closing, 5)

    running = futures[0].result()
    assert running is not None and running.task == "0"
    late = deferred.submit({"n": 9})
    assert late.done() and late.result() is None
    assert deferred.shed == 3
