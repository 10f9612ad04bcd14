"""/v1/responses through the official openai SDK, against llama.cpp's real server
(SmolLM2 cannot call tools: tests/unit/test_responses_api.py covers tools against the
scripted upstream), and background jobs across a gateway restart."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import GatewayProcess, registry_gateway

MODEL = "smollm2-135m"


def _until(client: openai.OpenAI, response_id: str, *statuses: str, within_s: float = 60) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        response = client.responses.retrieve(response_id)
        if response.status in statuses:
            return response
        time.sleep(0.1)
    raise AssertionError(f"{response_id} is still {response.status}")


@pytest.fixture(scope="module")
def stranger(gateway: GatewayProcess) -> openai.OpenAI:
    """A key of another tenant."""
    key = str(gateway.create_key("responses-stranger", "--tenant", "other-tenant")["api_key"])
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_create_retrieve_and_list_input_items(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(
        model=MODEL,
        input="Say hello in one word.",
        instructions="You are terse.",
        max_output_tokens=8,
        temperature=0,
        metadata={"case": "plain"},
    )
    response = raw.parse()
    assert raw.headers["x-edgeroute-model"] == MODEL
    assert response.status in ("completed", "incomplete") and response.output_text.strip()
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.metadata == {"case": "plain"} and response.instructions == "You are terse."
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    items = client.responses.input_items.list(response.id)
    assert [(i.type, getattr(i, "role", None)) for i in items.data] == [("message", "user")]


def test_previous_response_id_chains_turns(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=8)
    second = client.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id, max_output_tokens=8
    )
    assert second.previous_response_id == first.id and second.output_text.strip()
    # The second turn's prompt held the first turn: it counts more input tokens.
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens


def test_json_schema_format_constrains_the_answer(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=MODEL,
        input="Is the sky blue? Answer in JSON.",
        text={"format": {"type": "json_schema", "name": "verdict", "schema": schema}},
        max_output_tokens=32,
        temperature=0,
    )
    assert isinstance(json.loads(response.output_text)["ok"], bool)


def test_streaming_events_and_the_final_response(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model=MODEL, input="Count to three.", max_output_tokens=12, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert "response.output_text.delta" in kinds
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        kinds[-1],
    ] and kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    # Room to finish: the SDK's helper wants response.completed, not response.incomplete.
    with client.responses.stream(
        model=MODEL, input="Say hi.", max_output_tokens=200, temperature=0
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and final.usage is not None
    # A streamed response is stored like any other.
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_background_polls_to_completed_then_delete(client: openai.OpenAI) -> None:
    queued = client.responses.create(
        model=MODEL, input="Say hello.", max_output_tokens=8, background=True
    )
    assert queued.status == "queued" and queued.background
    done = _until(client, queued.id, "completed", "incomplete")
    assert done.output_text.strip() and done.usage is not None
    deleted = client.responses.with_raw_response.delete(queued.id)
    assert deleted.http_response.json() == {
        "id": queued.id,
        "object": "response.deleted",
        "deleted": True,
    }
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(queued.id)


def test_cancel_a_background_response(client: openai.OpenAI) -> None:
    queued = client.responses.create(model="hangs", input="never answered", background=True)
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    time.sleep(1)
    assert client.responses.retrieve(queued.id).status == "cancelled"


def test_bad_paths_in_openai_shape(client: openai.OpenAI, stranger: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        client.post("/responses", body={"model": MODEL}, cast_to=httpx.Response)
    assert missing.value.param == "input"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_unknown")
    assert unknown.value.param == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as search:
        client.responses.create(model=MODEL, input="x", tools=[{"type": "web_search"}])
    assert search.value.param == "tools[0].type" and "web_search" in search.value.message
    with pytest.raises(openai.BadRequestError) as unstored:
        client.responses.create(model=MODEL, input="x", background=True, store=False)
    assert unstored.value.param == "store"
    mine = client.responses.create(model=MODEL, input="Hi.", max_output_tokens=4)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.create(model=MODEL, input="x", previous_response_id=mine.id)


@pytest.fixture
def restartable(fault_upstream: FaultUpstream, workdir: Path) -> Iterator[Any]:
    """Gateways, one at a time, on one store: a model whose upstream takes 3 s, leases of
    2 s so a killed gateway's job is taken over quickly."""
    started: list[GatewayProcess] = []
    name = f"restart-{len(list(workdir.glob('restart-*')))}"

    def start() -> GatewayProcess:
        process = registry_gateway(
            workdir,
            name,
            [
                fault_model(
                    "slow",
                    fault_upstream.url,
                    "slow",
                    timeouts={"connect": 1, "read": 10, "total": 20},
                )
            ],
            {"EDGEROUTE_RESPONSES_LEASE_S": "2"},
        )
        (workdir / name / "state").mkdir(parents=True, exist_ok=True)
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.stop()


@pytest.mark.parametrize("stop", ["graceful", "killed"])
def test_a_background_job_survives_a_gateway_restart(restartable: Any, stop: str) -> None:
    first: GatewayProcess = restartable()
    key = str(first.create_key("restart")["api_key"])
    client = openai.OpenAI(base_url=first.url + "/v1", api_key=key, max_retries=0, timeout=30)
    queued = client.responses.create(model="slow", input="take your time", background=True)
    _until(client, queued.id, "in_progress", within_s=10)
    assert first.proc is not None
    if stop == "graceful":
        first.stop()  # SIGTERM: the job goes back to the queue
    else:
        os.killpg(first.proc.pid, signal.SIGKILL)  # its lease is left to run out
        first.proc.wait()
    second: GatewayProcess = restartable()
    again = openai.OpenAI(base_url=second.url + "/v1", api_key=key, max_retries=0, timeout=30)
    done = _until(again, queued.id, "completed", within_s=30)
    assert done.output_text == "Hello from the instant upstream."


def test_upstream_failures_end_as_failed_responses(client: openai.OpenAI) -> None:
    """Against the fault upstream: a stream that breaks mid-way ends with ``error`` then
    ``response.failed``; a background job whose upstream fails is ``failed`` with the
    error."""
    events = list(client.responses.create(model="stream-error", input="Hi.", stream=True))
    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.error is not None
    queued = client.responses.create(model="broken", input="Hi.", background=True)
    done = _until(client, queued.id, "failed", "completed")
    assert done.status == "failed" and done.error is not None and done.output == []
