"""handlers/stream.py as StreamFunction runs it behind the REST API's streaming routes:
executed as a program from another folder (the Lambda Web Adapter's /opt/bootstrap runs
``$LAMBDA_TASK_ROOT/$_HANDLER``), ready once the template's readiness path answers without
a key, and serving each streaming route both ways on the one port: ``stream: true`` as
server-sent events whose first arrives long before the last, ``stream: false`` as one
JSON answer (which the adapter relays in one piece).

Not run here: the adapter itself and API Gateway's InvokeWithResponseStream framing
(docs/deploy.md, "Not verified offline")."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.tools.localinvoke.template import load_template
from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import free_port

REPO = Path(__file__).resolve().parents[2]


def _stream_function() -> dict[str, Any]:
    props: dict[str, Any] = load_template(REPO / "template.yaml")["Resources"]["StreamFunction"][
        "Properties"
    ]
    return props


# The routes the REST API sends to StreamFunction (its Api events), as the template says.
STREAMED_ROUTES = [
    (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
    for event in _stream_function().get("Events", {}).values()
    if event["Type"] == "Api"
]


def test_the_api_streams_the_chat_and_completion_routes_to_this_program() -> None:
    assert sorted(STREAMED_ROUTES) == [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/messages"),
        ("POST", "/v1/responses"),
    ]
    for event in _stream_function()["Events"].values():
        assert event["Properties"]["ResponseTransferMode"] == "RESPONSE_STREAM"


def _body(path: str, model: str, **extra: Any) -> dict[str, Any]:
    """A small request in the shape ``path`` takes."""
    if path == "/v1/responses":
        return {"model": model, "max_output_tokens": 8, "input": "hi", **extra}
    if path in ("/v1/chat/completions", "/v1/messages"):
        prompt: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    else:
        prompt = {"prompt": "hi"}
    return {"model": model, "max_tokens": 8, **prompt, **extra}


# The event that ends each API's stream, and the object a buffered answer is.
LAST_EVENT = {"/v1/responses": "response.completed", "/v1/messages": "message_stop"}
OBJECT = {"/v1/responses": "response", "/v1/messages": "message"}


def _registry(fault_url: str) -> dict[str, Any]:
    """One model that answers at once, one that streams a chunk every 50 ms."""
    slow = fault_model("slow", fault_url, "slow-stream", timeouts={"read": 5, "total": 60})
    return {"models": [fault_model("instant", fault_url, "instant"), slow]}


@pytest.fixture(scope="module")
def stream_function(
    fault_upstream: FaultUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of handlers/stream.py started as the adapter starts it."""
    work = tmp_path_factory.mktemp("stream-function")
    registry = work / "models.yaml"
    registry.write_text(yaml.safe_dump(_registry(fault_upstream.url)))
    secret, record = mint_key("stream-entry", tenant="t")

    async def put() -> None:
        store = SQLiteStore(work / "edgeroute.db")
        await store.put_key(record)
        await store.close()

    asyncio.run(put())
    props = _stream_function()
    lwa = props["Environment"]["Variables"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "AWS_"))}
    env.update(
        LAMBDA_TASK_ROOT=str(REPO / "functions"),  # where Lambda unpacks the function's code
        PORT=str(port),
        EDGEROUTE_REGISTRY=str(registry),
        EDGEROUTE_SQLITE_PATH=str(work / "edgeroute.db"),
        LOG_LEVEL="WARNING",
    )
    env.pop("PYTHONPATH", None)  # the script puts the task root first, as Lambda would
    program = REPO / "functions" / props["Handler"]
    process = subprocess.Popen(
        [sys.executable, str(program)], cwd=work, env=env, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # what the adapter does before it takes the first event
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                ready = httpx.get(base + lwa["AWS_LWA_READINESS_CHECK_PATH"], timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the readiness check never answered"
            time.sleep(0.1)
        yield base, secret
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(("method", "path"), STREAMED_ROUTES)
def test_a_streaming_route_streams_when_asked(
    stream_function: tuple[str, str], method: str, path: str
) -> None:
    base, secret = stream_function
    body = _body(path, "slow", stream=True)
    started = time.monotonic()
    arrivals: list[float] = []
    lines: list[str] = []
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.stream(method, base + path, json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - started)
                lines.append(line)
    if path in LAST_EVENT:
        assert json.loads(lines[-1].removeprefix("data: "))["type"] == LAST_EVENT[path]
    else:
        assert lines[-1] == "data: [DONE]"
    # The upstream sends a chunk every 50 ms: the first event is not held back for the rest.
    assert len(arrivals) > 50 and arrivals[0] < arrivals[-1] / 4, (arrivals[0], arrivals[-1])


@pytest.mark.parametrize(("method", "path"), STREAMED_ROUTES)
def test_the_same_route_answers_buffered_calls(
    stream_function: tuple[str, str], method: str, path: str
) -> None:
    base, secret = stream_function
    answer = httpx.request(
        method,
        base + path,
        json=_body(path, "instant"),
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    answered = json.loads(answer.text)
    if path in OBJECT:
        assert answered.get("object", answered.get("type")) == OBJECT[path]
    else:
        assert answered["object"] in {"chat.completion", "text_completion"}


def test_a_wrong_key_is_refused_here_too(stream_function: tuple[str, str]) -> None:
    """Behind the authorizer the app still checks the key (one rule in two places)."""
    base, _ = stream_function
    answer = httpx.post(
        base + "/v1/chat/completions",
        json={"model": "instant", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer er-wrong"},
        timeout=30,
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"
