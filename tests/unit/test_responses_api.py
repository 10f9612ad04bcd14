"""/v1/responses in process, through the real ``openai`` SDK (AsyncOpenAI over ASGI),
against the scripted upstream: what SmolLM2 cannot do (tools), the background job's
life (queued, claimed, cancelled, taken over), quotas and the ledger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import openai
import pytest
from fastapi.routing import APIRoute

from edgeroute.api import openai_responses
from edgeroute.api.app import create_app
from edgeroute.errors import ContextLengthExceeded
from edgeroute.pipeline import background
from edgeroute.pipeline.background import BackgroundResponses
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.responses import STORED_CONVERSATION_BYTES, as_responses_error
from edgeroute.pipeline.scopes import Scope, scope_for_path
from edgeroute.settings import ResponsesConfig
from edgeroute.store.base import KeyLimits, KeyPolicy
from edgeroute.store.keys import mint_key
from tests.support.inprocess import counters, ledger, memory_gateway
from tests.support.scripted_upstream import DEFAULT_TEXT, Answer, Hang, ScriptedUpstream

REGISTRY = """
models:
  - {name: tiny, endpoint: 'http://small:1/v1', tier: small, retries: 0,
     capabilities: [chat, tools, json, vision], price: {input_per_mtok: 1.0, output_per_mtok: 2.0},
     timeouts: {connect: 1, read: 30, total: 60}}
"""
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CALL = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
# The same call as chat completions carry it.
CHAT_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


class Harness:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.app = create_app(gw)

    async def client(self, tenant: str = "t1", **key: Any) -> openai.AsyncOpenAI:
        secret, record = mint_key(f"k-{tenant}-{len(key)}", tenant=tenant, **key)
        await self.gw.store.put_key(record)
        self.key = record
        transport = httpx2.ASGITransport(app=self.app, raise_app_exceptions=False)
        http = httpx2.AsyncClient(transport=transport, base_url="http://gateway/v1")
        return openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key=secret, http_client=http, max_retries=0
        )

    @property
    def workers(self) -> BackgroundResponses:
        workers: BackgroundResponses = self.app.state.background_responses
        return workers


@pytest.fixture
async def harness(upstream: ScriptedUpstream) -> AsyncIterator[Harness]:
    h = Harness(memory_gateway(REGISTRY))
    yield h
    workers = getattr(h.app.state, "background_responses", None)
    if workers is not None:
        await workers.stop()


async def _until(client: openai.AsyncOpenAI, response_id: str, *statuses: str) -> Any:
    for _ in range(200):
        response = await client.responses.retrieve(response_id)
        if response.status in statuses:
            return response
        await asyncio.sleep(0.02)
    raise AssertionError(f"{response_id} stayed {response.status}")


def _messages(upstream: ScriptedUpstream, index: int = -1) -> list[Any]:
    messages: list[Any] = upstream.calls[index].payload["messages"]
    return messages


async def test_a_plain_response_is_the_chat_answer_with_its_usage(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    client = await harness.client()
    since = time.time()
    response = await client.responses.create(model="tiny", input="hello", instructions="Be brief.")
    assert response.status == "completed" and response.output_text == DEFAULT_TEXT
    assert response.id.startswith("resp_") and response.model == "tiny"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 5)
    assert response.usage.total_tokens == 12
    assert _messages(upstream) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]
    again = await client.responses.retrieve(response.id)
    assert again.output_text == DEFAULT_TEXT and again.status == "completed"
    await asyncio.sleep(0.05)  # the ledger line is written after the answer
    lines = await ledger(harness.gw, since)
    assert [(r.endpoint, r.model, r.status, r.prompt_tokens) for r in lines] == [
        ("chat", "tiny", 200, 7)
    ]


async def test_previous_response_id_continues_the_conversation_of_its_tenant_only(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    client = await harness.client()
    first = await client.responses.create(model="tiny", input="hi", instructions="Be brief.")
    second = await client.responses.create(
        model="tiny", input="and then?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    # Instructions are not carried over, as in OpenAI's API.
    assert _messages(upstream) == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": DEFAULT_TEXT},
        {"role": "user", "content": "and then?"},
    ]
    stranger = await harness.client("t2")
    for attempt in (
        stranger.responses.retrieve(first.id),
        stranger.responses.create(model="tiny", input="x", previous_response_id=first.id),
        stranger.responses.delete(first.id),
        stranger.responses.input_items.list(first.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            await attempt
        assert caught.value.code == "response_not_found"
    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.create(model="tiny", input="x", previous_response_id="resp_nope")
    assert missing.value.param == "previous_response_id"


async def test_function_calls_go_out_as_items_and_their_outputs_come_back(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    upstream.script(
        "tiny", Answer("", tool_calls=(CALL,), finish="tool_calls"), Answer(text="Sunny in Paris")
    )
    client = await harness.client()
    asked = await client.responses.create(
        model="tiny", input="Weather in Paris?", tools=[WEATHER], tool_choice="auto"
    )
    assert upstream.calls[0].payload["tools"] == [
        {
            "type": "function",
            "function": {k: v for k, v in WEATHER.items() if k != "type"},
        }
    ]
    [call] = asked.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == (
        "call_1",
        "get_weather",
        '{"city": "Paris"}',
    )
    answered = await client.responses.create(
        model="tiny",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": "call_1", "output": '{"sky": "sunny"}'}],
        tools=[WEATHER],
    )
    assert answered.output_text == "Sunny in Paris"
    assert _messages(upstream)[1:] == [
        {"role": "assistant", "tool_calls": [CHAT_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'},
    ]


async def test_a_streamed_function_call_arrives_as_its_events(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    upstream.script("tiny", Answer("", tool_calls=(CALL,), finish="tool_calls"))
    client = await harness.client()
    async with client.responses.stream(model="tiny", input="Weather?", tools=[WEATHER]) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",  # the upstream streams the arguments
        "response.function_call_arguments.delta",  # in two pieces
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output[0].type == "function_call"
    assert final.output[0].arguments == '{"city": "Paris"}'


async def test_json_schema_format_becomes_the_chat_response_format(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    client = await harness.client()
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "integer"}}}
    await client.responses.create(
        model="tiny",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "a?"}]}],
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema}},
        max_output_tokens=20,
        temperature=0.5,
    )
    payload = upstream.calls[-1].payload
    assert payload["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema},
    }
    assert (payload["max_tokens"], payload["temperature"]) == (20, 0.5)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"truncation": "auto"}, "truncation"),
        ({"reasoning": {"effort": "high"}}, "reasoning"),
        ({"background": True, "store": False}, "store"),
        ({"prompt_cache_retention": "24h"}, "prompt_cache_retention"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        ({"max_output_tokens": "20"}, "max_output_tokens"),
    ],
)
async def test_what_edgeroute_cannot_honour_is_refused_naming_the_field(
    harness: Harness, upstream: ScriptedUpstream, extra: dict[str, Any], param: str
) -> None:
    client = await harness.client()
    body: dict[str, Any] = {"model": "tiny", "input": "hello", **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.post("/responses", body=body, cast_to=httpx.Response)
    assert caught.value.param == param, caught.value.body
    assert upstream.calls == []


async def test_missing_input_is_a_400_naming_it(harness: Harness) -> None:
    client = await harness.client()
    with pytest.raises(openai.BadRequestError) as caught:
        await client.post("/responses", body={"model": "tiny"}, cast_to=httpx.Response)
    assert caught.value.param == "input"


async def test_a_background_response_reserves_at_acceptance_and_settles_at_completion(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    client = await harness.client(limits=KeyLimits(tpm=100_000, budget_usd_micros=10_000_000))
    since = time.time()
    upstream.script("tiny", Hang(), Answer())
    queued = await client.responses.create(model="tiny", input="hello", background=True)
    assert queued.status == "queued" and queued.background
    running = await _until(client, queued.id, "in_progress")
    reserved = await counters(harness.gw, harness.key, since)
    assert reserved["tokens"] > 12  # the prompt plus the most it may generate
    cancelled = await client.responses.cancel(running.id)
    assert cancelled.status == "cancelled"
    await asyncio.sleep(0.1)
    assert not harness.workers._running  # the call in flight was stopped
    assert (await client.responses.retrieve(queued.id)).status == "cancelled"
    given_back = await counters(harness.gw, harness.key, since)
    assert given_back["tokens"] == 0 and given_back["budget"] == 0

    since = time.time()
    second = await client.responses.create(model="tiny", input="hello", background=True)
    done = await _until(client, second.id, "completed")
    assert done.output_text == DEFAULT_TEXT and done.usage is not None
    settled = await counters(harness.gw, harness.key, since)
    assert settled["tokens"] == 12  # what was used, the rest given back
    items = await client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message"]
    await client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(second.id)


async def test_a_job_whose_worker_stopped_is_taken_over_after_its_lease(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    client = await harness.client()
    upstream.script("tiny", Hang(), Answer())
    queued = await client.responses.create(model="tiny", input="hello", background=True)
    await _until(client, queued.id, "in_progress")
    await harness.workers.stop()  # the process "died": its lease is left to run out
    record = await harness.gw.store.responses.get("t1", queued.id)
    assert record is not None
    expired = dict(record, lease_until=time.time() - 1)
    assert await harness.gw.store.responses.swap("t1", queued.id, record, expired, None)
    successor = BackgroundResponses(harness.gw)
    try:
        assert await successor.sweep() == 1
        done = await _until(client, queued.id, "completed")
    finally:
        await successor.stop()
    assert done.output_text == DEFAULT_TEXT


async def test_cancel_needs_a_background_response(harness: Harness) -> None:
    client = await harness.client()
    response = await client.responses.create(model="tiny", input="hello")
    with pytest.raises(openai.BadRequestError):
        await client.responses.cancel(response.id)


async def test_the_responses_scope_opens_the_responses_routes(harness: Harness) -> None:
    chat_only = await harness.client(policy=KeyPolicy(scopes=("chat",)))
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await chat_only.responses.create(model="tiny", input="hello")
    assert "'responses' scope" in caught.value.message
    scoped = await harness.client(policy=KeyPolicy(scopes=("responses",)))
    response = await scoped.responses.create(model="tiny", input="hello")
    assert (await scoped.responses.retrieve(response.id)).id == response.id


async def test_with_a_worker_function_acceptance_invokes_it_and_it_runs_the_job(
    harness: Harness, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On AWS: the job is queued and handed to the worker function by an asynchronous
    invocation; its handler (``run_here``) runs it; a sweep finds a job whose
    invocation was lost."""
    invoked: list[tuple[str, Any]] = []
    monkeypatch.setattr(background, "invoke_async", lambda fn, job: invoked.append((fn, job)))
    config = ResponsesConfig(worker_function="edgeroute-dev-ResponsesWorker")
    harness.gw.settings = harness.gw.settings.model_copy(update={"responses": config})
    client = await harness.client()
    queued = await client.responses.create(model="tiny", input="hello", background=True)
    assert invoked == [("edgeroute-dev-ResponsesWorker", {"tenant": "t1", "id": queued.id})]
    await asyncio.sleep(0.2)
    assert (await client.responses.retrieve(queued.id)).status == "queued"  # not run here
    worker = BackgroundResponses(harness.gw, here=True)
    assert await worker.run_here("t1", queued.id) == 1
    assert (await client.responses.retrieve(queued.id)).output_text == DEFAULT_TEXT

    lost = await client.responses.create(model="tiny", input="hello", background=True)
    assert await BackgroundResponses(harness.gw, here=True).run_here() == 1  # the sweep
    assert (await client.responses.retrieve(lost.id)).status == "completed"


def test_every_responses_route_needs_the_responses_scope() -> None:
    paths = {r.path for r in openai_responses.router.routes if isinstance(r, APIRoute)}
    assert len(paths) == 4
    assert {scope_for_path(p) for p in paths} == {Scope.RESPONSES}
    assert scope_for_path("/v1/responses/resp_1/cancel") is Scope.RESPONSES  # as sent


@pytest.mark.parametrize(
    ("chat_param", "param"),
    [
        ("messages[2].content", "input"),
        ("max_tokens", "max_output_tokens"),
        ("response_format.json_schema", "text.format.json_schema"),
        ("temperature", "temperature"),
    ],
)
def test_chat_side_refusals_name_the_responses_field(chat_param: str, param: str) -> None:
    error = ContextLengthExceeded(f"Fix '{chat_param}'.", param=chat_param)
    renamed = as_responses_error(error)
    assert isinstance(renamed, ContextLengthExceeded) and renamed.param == param
    assert renamed.message == f"Fix '{param}'."


async def test_a_cancelled_or_deleted_queued_job_gives_its_reservation_back(
    harness: Harness, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(background, "invoke_async", lambda fn, job: None)  # never runs
    config = ResponsesConfig(worker_function="worker")
    harness.gw.settings = harness.gw.settings.model_copy(update={"responses": config})
    client = await harness.client(limits=KeyLimits(tpm=100_000, max_concurrent=1))
    since = time.time()
    queued = await client.responses.create(model="tiny", input="hello", background=True)
    assert (await counters(harness.gw, harness.key, since))["tokens"] > 0
    assert (await client.responses.cancel(queued.id)).status == "cancelled"
    assert (await counters(harness.gw, harness.key, since))["tokens"] == 0
    # The concurrency slot came back too: another job is accepted, then deleted.
    second = await client.responses.create(model="tiny", input="hello", background=True)
    await client.responses.delete(second.id)
    assert (await counters(harness.gw, harness.key, since))["tokens"] == 0
    third = await client.responses.create(model="tiny", input="hello", background=True)
    assert third.status == "queued"
    assert upstream.calls == []


async def test_image_input_reaches_the_upstream_and_store_false_keeps_nothing(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    client = await harness.client()
    image = "data:image/png;base64,iVBORw0KGgo="
    response = await client.responses.create(
        model="tiny",
        store=False,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in it?"},
                    {"type": "input_image", "image_url": image, "detail": "auto"},
                ],
            }
        ],
    )
    assert response.output_text == DEFAULT_TEXT
    assert _messages(upstream) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in it?"},
                {"type": "image_url", "image_url": {"url": image, "detail": "auto"}},
            ],
        }
    ]
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)


async def test_a_conversation_too_long_to_store_is_refused_before_the_model_runs(
    harness: Harness, upstream: ScriptedUpstream
) -> None:
    client = await harness.client()
    long_text = "word " * (STORED_CONVERSATION_BYTES // 5)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="tiny", input=long_text)
    assert caught.value.code == "conversation_too_large" and caught.value.param == "input"
    assert upstream.calls == []
