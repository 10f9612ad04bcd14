"""PII modes through the gateway: ``mask`` forwards placeholders and gives the caller their
values back (buffered, streamed, from the cache), ``block`` is a 400 naming the classes,
``allow`` forwards as sent, and requests answered at the edge are left alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edgeroute.pipeline.cache import Entry
from edgeroute.pipeline.pii import _ChunkRestorer, _restore_events, restore_body
from edgeroute.privacy.masking import Masker, StreamRestorer
from edgeroute.privacy.recognizers import Found, Scanner
from edgeroute.store.base import ApiKey, KeyPolicy
from edgeroute.store.keys import mint_key
from edgeroute.types import Json, Kind
from edgeroute.wire.sse import DONE_EVENT, encode_event
from tests.support.inprocess import CHAT, Client, ledger, memory_gateway, sse_events
from tests.support.scripted_upstream import Answer, Hang, ScriptedUpstream

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PROMPT = f"Email {EMAIL} and card {CARD}; again {EMAIL}."
REGISTRY = """
models:
  - {name: m, endpoint: 'http://m:1/v1', tier: small, capabilities: [chat, completions, embeddings]}
  - {name: edge-embed, protocol: edge, tier: edge, capabilities: [embeddings]}
"""


def masker() -> Masker:
    return Masker(Scanner())


def test_same_value_same_placeholder_and_back() -> None:
    m = masker()
    [masked] = m.mask_all([PROMPT])
    assert masked == "Email [EMAIL_1] and card [CARD_1]; again [EMAIL_1]."
    assert m.classes == ("card", "email")
    assert m.restore(masked) == PROMPT


def test_placeholders_the_caller_wrote_are_never_handed_out_or_rewritten() -> None:
    m = masker()
    masked = m.mask_all(["template [EMAIL_1] here", f"mine: {EMAIL}"])
    assert masked == ["template [EMAIL_1] here", "mine: [EMAIL_2]"]
    assert m.restore("[EMAIL_1] / [EMAIL_2]") == f"[EMAIL_1] / {EMAIL}"


def test_mangled_placeholders_stay_as_they_are() -> None:
    m = masker()
    m.mask_all([EMAIL])
    assert (
        m.restore("[EMAIL 1] [email_1] [EMAIL_1 [EMAIL_9]")
        == "[EMAIL 1] [email_1] [EMAIL_1 [EMAIL_9]"
    )


def test_a_placeholder_split_across_pieces_is_held_back() -> None:
    m = masker()
    m.mask_all([EMAIL])
    stream = StreamRestorer(m)
    out = [stream.feed(p) for p in ["Mail: [EM", "AIL", "_1", "] ok [", "x"]]
    assert out == ["Mail: ", "", "", f"{EMAIL} ok ", "[x"]
    assert stream.feed("tail [EMAIL_") == "tail "
    assert stream.flush() == "[EMAIL_"


def _chunk(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    return encode_event({"id": "c", "object": "chat.completion.chunk", "choices": [choice]})


async def _collect(events: list[bytes], m: Masker) -> str:
    async def source() -> AsyncIterator[bytes]:
        for e in events:
            yield e

    out = [e async for e in _restore_events(source(), m)]
    assert out[-1] == DONE_EVENT
    text = ""
    for event in sse_events(b"".join(out)):
        if isinstance(event, dict):
            text += "".join(c["delta"].get("content") or "" for c in event["choices"])
    return text


async def test_stream_restores_split_placeholders_and_flushes_what_never_finished() -> None:
    m = masker()
    m.mask_all([EMAIL])
    finished = [_chunk("To [EMA"), _chunk("IL_1]"), _chunk(" and [EMAIL_"), _chunk("", "stop")]
    assert await _collect([*finished, DONE_EVENT], m) == f"To {EMAIL} and [EMAIL_"
    unfinished = [_chunk("To [EMAIL"), DONE_EVENT]  # no finish_reason: flushed before [DONE]
    assert await _collect(unfinished, m) == "To [EMAIL"


def test_tool_call_arguments_and_text_completions_are_restored() -> None:
    m = masker()
    m.mask_all([EMAIL])
    body = {
        "choices": [
            {"index": 0, "text": "x [EMAIL_1]"},
            {
                "index": 1,
                "message": {
                    "content": None,
                    "tool_calls": [{"function": {"name": "f", "arguments": '{"to":"[EMAIL_1]"}'}}],
                },
            },
        ]
    }
    restored = restore_body(body, m)
    assert restored["choices"][0]["text"] == f"x {EMAIL}"
    assert json.loads(
        restored["choices"][1]["message"]["tool_calls"][0]["function"]["arguments"]
    ) == {"to": EMAIL}
    assert body["choices"][0]["text"] == "x [EMAIL_1]"  # the cache's copy is untouched
    chunks = _ChunkRestorer(m)
    first = chunks.restore(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"arguments": '{"to":"[EMA'}}]
                    },
                }
            ]
        }
    )
    last = chunks.restore(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'IL_1]"}'}}]},
                }
            ]
        }
    )
    pieces = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in (first, last)
    ]
    assert "".join(pieces) == f'{{"to":"{EMAIL}"}}'


class KeyClient(Client):
    key: ApiKey


async def _client(pii: str | None, default: str = "allow") -> KeyClient:
    gw = memory_gateway(REGISTRY)
    gw.settings = gw.settings.model_copy(update={"pii_default": default})
    secret, key = mint_key("unit", policy=KeyPolicy(pii=pii))
    await gw.store.put_key(key)
    client = KeyClient(gw, secret)
    client.key = key
    return client


def _echo(upstream: ScriptedUpstream) -> None:
    upstream.script("m", Answer(text="You said [EMAIL_1] and [CARD_1] ok"))


def _sent(upstream: ScriptedUpstream) -> str:
    return json.dumps(upstream.calls[-1].payload)


async def test_mask_buffered_upstream_sees_placeholders_caller_sees_values(
    upstream: ScriptedUpstream,
) -> None:
    _echo(upstream)
    client = await _client("mask")
    response = await client.post(
        CHAT, {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == f"You said {EMAIL} and {CARD} ok"
    sent = _sent(upstream)
    assert EMAIL not in sent and "4111" not in sent and "[EMAIL_1]" in sent and "[CARD_1]" in sent


async def test_mask_streamed(upstream: ScriptedUpstream) -> None:
    _echo(upstream)
    client = await _client(None, default="mask")  # the operator's default applies
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    response = await client.post(CHAT, body)
    events = sse_events(response.content)
    text = "".join(
        c["delta"].get("content") or "" for e in events if isinstance(e, dict) for c in e["choices"]
    )
    assert text == f"You said {EMAIL} and {CARD} ok" and events[-1] == "[DONE]"
    assert EMAIL not in _sent(upstream)


async def test_mask_covers_text_parts_tool_arguments_prompts_and_embeddings(
    upstream: ScriptedUpstream,
) -> None:
    client = await _client("mask")
    messages = [
        {"role": "user", "content": [{"type": "text", "text": f"mine is {EMAIL}"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t",
                    "type": "function",
                    "function": {"name": "send", "arguments": json.dumps({"to": EMAIL})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t", "content": f"sent to {EMAIL}"},
    ]
    assert (await client.post(CHAT, {"model": "m", "messages": messages})).status_code == 200
    assert (
        await client.post("/v1/completions", {"model": "m", "prompt": [f"to {EMAIL}"]})
    ).status_code == 200
    for call in upstream.calls:
        assert EMAIL not in json.dumps(call.payload) and "[EMAIL_1]" in json.dumps(call.payload)


async def test_cache_holds_what_the_upstream_saw_and_each_caller_gets_their_own(
    upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.script("m", Answer(text="Hi [EMAIL_1]"))
    client = await _client("mask")
    stored: list[bytes] = []
    put_local = client.gw.cache.put_local

    def keep(key: str, entry: Entry) -> bytes:
        stored.append(put_local(key, entry))
        return stored[-1]

    monkeypatch.setattr(client.gw.cache, "put_local", keep)

    async def ask(email: str) -> str:
        body = {
            "model": "m",
            "temperature": 0,
            "messages": [{"role": "user", "content": f"I am {email}"}],
        }
        response = await client.post(CHAT, body)
        content = response.json()["choices"][0]["message"]["content"]
        return f"{response.headers['x-edgeroute-cache']}: {content}"

    assert await ask("a@example.com") == "miss: Hi a@example.com"
    assert await ask("b@example.com") == "hit: Hi b@example.com"  # same masked request
    assert len(upstream.calls) == 1
    [filled] = stored
    assert b"Hi [EMAIL_1]" in filled and b"example.com" not in filled


async def test_block_is_a_400_naming_classes_never_values(upstream: ScriptedUpstream) -> None:
    client = await _client("block", default="mask")  # the key's own mode wins
    response = await client.post(
        CHAT, {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "pii_detected"
    assert error["param"] == "messages" and "(card, email)" in error["message"]
    assert "mask" in error["message"] and EMAIL not in response.text and "4111" not in response.text
    assert upstream.calls == []
    [record] = await ledger(client.gw)
    assert record.status == 400  # refused before admission, and in the ledger
    clean = {"model": "m", "messages": [{"role": "user", "content": "no personal data here"}]}
    assert (await client.post(CHAT, clean)).status_code == 200


async def test_allow_forwards_as_sent(upstream: ScriptedUpstream) -> None:
    client = await _client(None)  # the default default is allow: today's behaviour
    await client.post(CHAT, {"model": "m", "messages": [{"role": "user", "content": PROMPT}]})
    assert EMAIL in _sent(upstream)


@pytest.mark.parametrize("pii", ["mask", "block"])
async def test_requests_answered_at_the_edge_are_left_alone(
    upstream: ScriptedUpstream, pii: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeroute.pipeline import pii as stage

    seen: list[Kind] = []

    def slots(kind: Kind, payload: Json) -> list[tuple[Any, Any]]:
        seen.append(kind)
        return []

    monkeypatch.setattr(stage, "_text_slots", slots)
    client = await _client(pii)
    await client.post("/v1/embeddings", {"model": "edge-embed", "input": PROMPT})
    assert seen == []  # never scanned: the text never leaves the process
    await client.post("/v1/embeddings", {"model": "m", "input": PROMPT})
    assert seen  # an upstream's embeddings are


async def test_a_streamed_cache_hit_is_restored_with_the_callers_own_values(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("m", Answer(text="Hi [EMAIL_1]"))
    client = await _client("mask")

    async def ask(email: str) -> tuple[str, str]:
        content = f"I am {email}"
        body = {
            "model": "m",
            "stream": True,
            "temperature": 0,
            "messages": [{"role": "user", "content": content}],
        }
        response = await client.post(CHAT, body)
        events = [e for e in sse_events(response.content) if isinstance(e, dict)]
        text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
        return response.headers["x-edgeroute-cache"], text

    assert await ask("a@example.com") == ("miss", "Hi a@example.com")
    assert await ask("b@example.com") == ("hit", "Hi b@example.com")
    assert len(upstream.calls) == 1


async def test_a_caller_hanging_up_a_masked_stream_still_settles_it(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("m", Hang(after_chunks=2))
    client = await _client("mask")
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    headers, received = await client.hang_up_after(2, body)
    assert len(received) == 2
    assert upstream.calls[0].closed  # the relay under the restorer was closed
    [record] = await ledger(client.gw)
    assert (record.request_id, record.status) == (headers["x-request-id"], 499)


async def test_closing_the_restored_stream_closes_the_relay_under_it() -> None:
    closed = []

    async def relay() -> AsyncIterator[bytes]:
        try:
            yield _chunk("one")
            yield _chunk("two")
        finally:
            closed.append(True)  # where the relay settles the call

    restored = _restore_events(relay(), masker())
    assert await anext(restored)
    await restored.aclose()  # type: ignore[attr-defined]  # the server closing the response
    assert closed == [True]


class _AlwaysFinds(Scanner):
    """A scanner that finds a fresh value in whatever text it is shown, masked or not:
    the case where masking keeps exposing values and never reaches a clean text."""

    def find(self, text: str) -> list[Found]:
        return [Found(len(text) - 1, len(text), "email")] if text else []


def test_text_that_masking_cannot_make_clean_is_refused_never_forwarded() -> None:
    from edgeroute.errors import PiiDetected
    from edgeroute.pipeline.pii import _mask

    masker = Masker(_AlwaysFinds())
    with pytest.raises(PiiDetected) as refused:
        _mask(Kind.CHAT, {"messages": [{"role": "user", "content": "hello"}]}, masker)
    assert refused.value.status_code == 400 and refused.value.code == "pii_detected"
    assert "(email)" in refused.value.message and "could not" in refused.value.message
    assert masker.unmasked == ("email",)
