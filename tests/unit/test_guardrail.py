"""Guardrails: a key's policy (or the operator's default) runs the edge moderation model
on a request's text before it is forwarded, and with ``both`` on a buffered answer; a
flagged one is refused in OpenAI's error shape and settled like any refusal."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from edgeroute.errors import ConfigError
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.guardrail import answer_text, screen_input
from edgeroute.settings import GuardrailStage, Settings
from edgeroute.store.base import ApiKey, KeyLimits, KeyPolicy
from edgeroute.store.keys import mint_key
from edgeroute.types import Kind
from tests.support.inprocess import Client, counters, ledger, memory_gateway, sse_events
from tests.support.scripted_upstream import Answer, ScriptedUpstream

REGISTRY = """
models:
  - {name: priced, endpoint: 'http://priced:1/v1', tier: small, retries: 0,
     capabilities: [chat, completions],
     price: {input_per_mtok: 1000, output_per_mtok: 2000}}
"""
LIMITS = KeyLimits(rpm=100, tpm=100_000, tokens_per_day=1_000_000, budget_usd_micros=10**8)
NOTHING = {"requests": 1, "tokens": 0, "tokens_per_day": 0, "budget": 0}
THREAT = "I will find you tonight and break every bone in your body."
ABUSE = "You are a worthless idiot and everyone at work is sick of you."
BENIGN = "Could you suggest a name for my bakery?"


async def keyed(stage: str | None, default: GuardrailStage = "off") -> tuple[Client, ApiKey]:
    gw = memory_gateway(REGISTRY)
    gw.settings = Settings(
        registry="<memory>", sqlite_path=":memory:", classify="auto", guardrail_default=default
    )
    secret, key = mint_key("unit", limits=LIMITS)
    key = replace(key, policy=KeyPolicy(guardrail=stage))
    await gw.store.put_key(key)
    return Client(gw, secret), key


def says(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("stream", [False, True])
async def test_input_guardrail_refuses_a_flagged_chat_before_forwarding(
    upstream: ScriptedUpstream, stream: bool
) -> None:
    client, key = await keyed("input")
    since = time.time()

    response = await client.chat("priced", messages=says(THREAT), stream=stream)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "content_policy_violation"
    assert error["param"] == "messages"
    assert "guardrail refused" in error["message"]
    assert "harassment/threatening" in error["message"]
    assert upstream.calls == []  # nothing was forwarded
    assert await counters(client.gw, key, since) == NOTHING  # reservation given back
    [record] = await ledger(client.gw, since)
    assert (record.request_id, record.status) == (response.headers["x-request-id"], 400)


async def test_input_guardrail_reads_completions_prompts_and_chinese(
    upstream: ScriptedUpstream,
) -> None:
    client, _ = await keyed("input")

    response = await client.post(
        "/v1/completions", {"model": "priced", "prompt": "我今晚就要自杀。"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "prompt"
    assert "self-harm/intent" in error["message"]
    assert upstream.calls == []


async def test_input_guardrail_passes_ordinary_text(upstream: ScriptedUpstream) -> None:
    client, _ = await keyed("input")

    response = await client.chat("priced", messages=says(BENIGN))

    assert response.status_code == 200
    assert len(upstream.calls) == 1


@pytest.mark.parametrize(
    ("stage", "default", "refused"),
    [
        (None, "input", True),  # the operator's default applies to keys without a policy
        ("off", "input", False),  # a key's own policy wins over the default
        (None, "off", False),
        ("both", "off", True),
    ],
)
async def test_the_key_policy_and_the_operator_default(
    upstream: ScriptedUpstream, stage: str | None, default: GuardrailStage, refused: bool
) -> None:
    client, _ = await keyed(stage, default)

    response = await client.chat("priced", messages=says(ABUSE))

    assert response.status_code == (400 if refused else 200), response.text
    assert len(upstream.calls) == (0 if refused else 1)


async def test_both_withholds_a_flagged_answer_and_charges_what_it_used(
    upstream: ScriptedUpstream,
) -> None:
    upstream.script("priced", Answer(ABUSE))
    client, key = await keyed("both")
    since = time.time()

    first = await client.chat("priced", messages=says(BENIGN), temperature=0)
    second = await client.chat("priced", messages=says(BENIGN), temperature=0)

    for response in (first, second):
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "content_policy_violation"
        assert "refused the model's answer" in error["message"]
        assert "harassment" in error["message"]
        assert ABUSE not in response.text
    assert len(upstream.calls) == 2  # the withheld answer never filled the cache
    records = await ledger(client.gw, since)
    assert [(r.status, r.prompt_tokens, r.completion_tokens) for r in records] == [(400, 7, 5)] * 2
    used = await counters(client.gw, key, since)
    assert used["tokens"] == 24 and used["requests"] == 2


async def test_both_screens_streams_on_input_only(upstream: ScriptedUpstream) -> None:
    upstream.script("priced", Answer(ABUSE))
    client, _ = await keyed("both")

    response = await client.chat("priced", messages=says(BENIGN), stream=True)

    assert response.status_code == 200
    text = "".join(
        e["choices"][0]["delta"].get("content", "")
        for e in sse_events(response.text)
        if isinstance(e, dict) and e.get("choices")
    )
    assert "worthless" in text


async def test_the_outcome_is_recorded_for_the_audit() -> None:
    gw = memory_gateway(REGISTRY)
    _, key = mint_key("unit")
    key = replace(key, policy=KeyPolicy(guardrail="input"))
    passed = Call("req_1", key, Kind.CHAT, {"model": "priced", "messages": says(BENIGN)})
    refused = Call("req_2", key, Kind.CHAT, {"model": "priced", "messages": says(THREAT)})
    off = Call("req_3", replace(key, policy=KeyPolicy()), Kind.CHAT, refused.payload)

    await screen_input(gw, passed)
    with pytest.raises(Exception, match="guardrail"):
        await screen_input(gw, refused)
    await screen_input(gw, off)

    assert passed.guardrail == "passed"
    assert refused.guardrail is not None
    assert refused.guardrail.startswith("refused: ")
    assert {"harassment", "harassment/threatening"} <= set(refused.guardrail[9:].split(","))
    assert off.guardrail is None


def test_answer_text_reads_chat_and_completions_choices() -> None:
    body = {
        "choices": [
            {"message": {"role": "assistant", "content": "one"}},
            {"text": "two"},
            {"message": {"role": "assistant", "content": None, "tool_calls": []}},
            "junk",
        ]
    }
    assert answer_text(body) == "one\ntwo"


def test_the_operator_default_is_read_once_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_GUARDRAIL_DEFAULT", "both")
    assert Settings.from_env().guardrail_default == "both"
    monkeypatch.setenv("EDGEROUTE_GUARDRAIL_DEFAULT", "sometimes")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    assert "EDGEROUTE_GUARDRAIL_DEFAULT" in str(caught.value)
    assert "'off', 'input' or 'both'" in str(caught.value)
