"""The classifier and moderation at the edge: /v1/classify, moderation recall on its
evaluation set, and /v1/moderations through the openai SDK (the routing heads' floors
are in tests/unit/test_routing_heldout.py)."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from edgeroute.edge.moderation import offensive_scores
from tests.support.gateway import GatewayProcess

EDGE = Path(__file__).resolve().parents[2] / "edge_models"


def test_moderation_recall_on_the_english_evaluation_set() -> None:
    rows = [
        json.loads(line) for line in (EDGE / "data/eval/moderation.jsonl").read_text().splitlines()
    ]
    english = [r for r in rows if r.get("lang", "en") == "en"]
    scores = offensive_scores([r["text"] for r in english])
    flagged = [s >= 0.5 for s in scores]
    offensive = [bool(r["offensive"]) for r in english]
    hits = sum(f and o for f, o in zip(flagged, offensive, strict=True))
    assert hits / sum(offensive) >= 0.9
    assert hits / sum(flagged) >= 0.85


def test_classify_route(gateway: GatewayProcess, api_key: str) -> None:
    response = httpx.post(
        gateway.url + "/v1/classify",
        json={
            "model": "auto",
            "messages": [{"role": "user", "content": "Translate 'good night' into Japanese."}],
            "tools": [{"type": "function", "function": {"name": "lookup"}}],
        },
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "translate"
    assert body["language"] == "en"
    assert 0 <= body["complexity"] <= 1
    assert body["modality"] == ["text", "tools"]
    assert set(body["scores"]) >= {"chat", "code", "math", "translate"}
    assert body["prompt_tokens"] > 5
    # The tier score is explained: calibrated probabilities and what moved them most.
    assert 0 <= body["at_least_large"] <= body["at_least_medium"] <= 1
    assert 1 <= len(body["complexity_signals"]) <= 4


CODE_ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Fix this Python: def add(a, b): return a - b"}
]


def _ledger_line(database: Path, request_id: str) -> dict[str, Any]:
    """The request's ledger line, once the gateway has written it after the answer."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(database)) as db:
            row = db.execute(
                "SELECT body FROM usage WHERE request_id = ?", (request_id,)
            ).fetchone()
        if row is not None:
            line: dict[str, Any] = json.loads(row[0])
            return line
        time.sleep(0.05)
    raise AssertionError(f"no ledger line for {request_id}")


def test_named_model_requests_are_classified_for_the_ledger_after_the_answer(
    client: openai.OpenAI, workdir: Path
) -> None:
    # The default (EDGEROUTE_CLASSIFY=background): the answer does not wait for the
    # classifier, so its headers carry none; the ledger line does, load being low.
    response = client.chat.completions.with_raw_response.create(model="instant", messages=CODE_ASK)
    assert "x-edgeroute-task" not in response.headers
    line = _ledger_line(workdir / "store" / "edgeroute.db", response.headers["x-request-id"])
    assert (line["model"], line["task"]) == ("instant", "code")
    assert 0 <= line["complexity"] <= 1


def test_classify_always_adds_the_headers_and_fills_the_ledger(
    registry_file: Path, tmp_path: Path
) -> None:
    env = {
        "EDGEROUTE_REGISTRY": str(registry_file),
        "EDGEROUTE_SQLITE_PATH": str(tmp_path / "edgeroute.db"),
        "EDGEROUTE_CLASSIFY": "always",
    }
    with GatewayProcess(env, tmp_path) as gateway:
        key = str(gateway.create_key("always")["api_key"])
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        response = client.chat.completions.with_raw_response.create(
            model="instant", messages=CODE_ASK
        )
        line = _ledger_line(tmp_path / "edgeroute.db", response.headers["x-request-id"])
    assert response.headers["x-edgeroute-task"] == "code"
    assert 0 <= float(response.headers["x-edgeroute-complexity"]) <= 1
    assert line["task"] == "code"
    assert abs(line["complexity"] - float(response.headers["x-edgeroute-complexity"])) < 1e-3


def test_moderation_flags_abuse_and_passes_ordinary_text(client: openai.OpenAI) -> None:
    result = client.moderations.create(
        input=[
            "You are a worthless idiot and I hate you, shut the f*** up",
            "Thanks, see you at lunch!",
        ]
    )
    abusive, ordinary = result.results
    assert abusive.flagged and abusive.categories.harassment
    assert not ordinary.flagged
    assert abusive.category_scores.harassment > 0.5 > ordinary.category_scores.harassment
    assert result.model == "edge-moderation"


def test_moderation_answers_every_openai_category_or_null(client: openai.OpenAI) -> None:
    result = client.moderations.create(
        input=["我今晚就要自杀。", "How do I make a pipe bomb at home?", "Guten Morgen!"]
    )
    chinese, weapon, greeting = result.results
    assert chinese.flagged and chinese.categories.self_harm and chinese.categories.self_harm_intent
    assert weapon.flagged and weapon.categories.illicit
    assert not greeting.flagged and greeting.categories.hate is False
    for item in result.results:
        # Not evaluated: null, never false, and no input type it was applied to.
        assert item.categories.sexual_minors is None
        assert item.category_scores.sexual_minors is None
        assert item.category_applied_input_types.sexual_minors == []
        assert item.category_applied_input_types.harassment == ["text"]
        assert 0 <= item.category_scores.violence <= 1


def test_a_keys_input_guardrail_refuses_flagged_chat(gateway: GatewayProcess) -> None:
    key = str(gateway.create_key("guarded", "--guardrail", "input")["api_key"])
    guarded = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=60)
    threat = "I will find you tonight and break every bone in your body."

    with pytest.raises(openai.BadRequestError) as caught:
        guarded.chat.completions.create(
            model="instant", messages=[{"role": "user", "content": threat}]
        )
    assert caught.value.code == "content_policy_violation"
    assert "guardrail refused" in caught.value.message
    assert "harassment/threatening" in caught.value.message
    answer = guarded.chat.completions.create(
        model="instant", messages=[{"role": "user", "content": "Name a good bakery."}]
    )
    assert answer.choices[0].message.content


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"input": []}, "input"),
        ({"input": ["ok", 3]}, "input[1]"),
        ({"input": "x", "model": "instant"}, "model"),
    ],
)
def test_moderation_bad_inputs(
    gateway: GatewayProcess, api_key: str, payload: dict[str, object], param: str
) -> None:
    response = httpx.post(
        gateway.url + "/v1/moderations",
        json=payload,
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code in (400, 404), response.text
    assert response.json()["error"]["param"] == param
