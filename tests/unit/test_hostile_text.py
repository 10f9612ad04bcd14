"""Text that is not valid Unicode: refused in a request (HTTP or batch line) naming its
field, relayed as JSON escapes when an upstream sends it; a body that is not UTF-8 JSON
at all is a 400 in OpenAI's shape. (Unusual valid text: tests/acceptance/test_hostile_text.py.)"""

from __future__ import annotations

import json

import httpx
import pytest

from edgeroute.batch.jsonl import parse_line, validated_payload
from edgeroute.errors import InvalidRequest
from tests.support.inprocess import Client, add_key, memory_gateway, sse_events
from tests.support.scripted_upstream import Answer, ScriptedUpstream, Status

REGISTRY = """
models:
  - {name: m, endpoint: 'http://m:1/v1', tier: small, retries: 0}
"""


async def _client() -> Client:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw)
    return Client(gw, secret)


def test_a_batch_line_with_a_lone_surrogate_gets_the_http_refusal() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": "\udfff"}
    raw = json.dumps({"custom_id": "q1", "url": "/v1/chat/completions", "body": body})
    with pytest.raises(InvalidRequest) as refused:
        validated_payload(parse_line(1, raw))
    assert refused.value.param == "user"
    assert refused.value.code == "invalid_unicode"
    assert "lone UTF-16 surrogate (U+DFFF)" in refused.value.message


async def test_an_upstreams_lone_surrogate_is_relayed_as_an_escape(
    upstream: ScriptedUpstream,
) -> None:
    """Buffered as the stream path always sent it: the upstream's own JSON escape."""
    upstream.script("m", Answer(text="bad \ud800 text"))
    client = await _client()
    buffered = await client.chat("m")
    streamed = await client.chat("m", stream=True)
    for response in (buffered, streamed):
        assert response.status_code == 200
        assert b"\\ud800" in response.content
        response.content.decode("utf-8")  # valid UTF-8 on the wire
    assert "\ud800" in buffered.json()["choices"][0]["message"]["content"]
    assert sse_events(streamed.content)[-1] == "[DONE]"


async def test_an_upstream_error_quoting_a_lone_surrogate_keeps_its_status(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("m", Status(400, message="cannot read \ud800"))
    client = await _client()
    response = await client.chat("m")
    assert response.status_code == 400
    assert "cannot read \ud800" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "code", "says"),
    [
        (b'{"model": "m", "input": "\xc0\xaf"}', "invalid_utf8", "byte 25"),
        (b"[" * 100_000, "invalid_json", "nested no more than"),
    ],
    ids=["overlong-utf8", "nested-too-deep"],
)
async def test_a_body_that_cannot_be_read_is_a_400_in_openai_shape(
    raw: bytes, code: str, says: str
) -> None:
    client = await _client()
    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        response = await http.post(
            "/v1/chat/completions",
            content=raw,
            headers={"authorization": f"Bearer {client.secret}"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    assert says in error["message"]
