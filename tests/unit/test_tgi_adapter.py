"""The TGI adapter's translation, against a fake of TGI's native API (httpx MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest

from edgeroute.config.registry import ModelSpec, Protocol
from edgeroute.types import Kind
from edgeroute.upstreams import http, tgi

MODEL = ModelSpec(name="big", protocol=Protocol.TGI, endpoint="http://tgi.local", tier="large")


def _client(handler: httpx.MockTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=handler)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    requests: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append({"path": request.url.path, **body})
        if request.url.path == "/generate":
            return httpx.Response(
                200,
                json={
                    "generated_text": "Paris.",
                    "details": {
                        "finish_reason": "eos_token",
                        "generated_tokens": 3,
                        "prefill": [{}] * 9,
                    },
                },
            )
        events = [
            {"token": {"text": "Par", "special": False}, "generated_text": None, "details": None},
            {"token": {"text": "is", "special": False}, "generated_text": None, "details": None},
            {
                "token": {"text": "</s>", "special": True},
                "generated_text": "Paris",
                "details": {"finish_reason": "length", "generated_tokens": 3},
            },
        ]
        sse = "".join(f"data:{json.dumps(e)}\n\n" for e in events)
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    client = _client(httpx.MockTransport(handle))
    monkeypatch.setattr(http, "shared_client", lambda: client)  # the adapter calls through http
    return requests


def test_chat_renders_chatml_and_maps_parameters() -> None:
    prompt, params = tgi.to_tgi(
        Kind.CHAT,
        {
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0,
            "max_tokens": 5,
            "stop": "\n",
        },
    )
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert params["do_sample"] is False and "temperature" not in params
    assert params["max_new_tokens"] == 5 and params["stop"] == ["\n"]


async def test_generate_maps_to_openai_shape(seen: list[dict[str, object]]) -> None:
    body = await tgi.TGINative().send(
        Kind.CHAT, {"messages": [{"role": "user", "content": "Capital of France?"}]}, MODEL
    )
    assert body["choices"][0]["message"]["content"] == "Paris."
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert seen[0]["path"] == "/generate"


async def test_generate_stream_maps_to_chunks(seen: list[dict[str, object]]) -> None:
    chunks = [
        c async for c in tgi.TGINative().stream(Kind.COMPLETIONS, {"prompt": "The capital"}, MODEL)
    ]
    assert [c["choices"][0]["text"] for c in chunks if c["choices"]] == ["Par", "is", ""]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert seen[0]["path"] == "/generate_stream"
