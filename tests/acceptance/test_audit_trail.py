"""The audit trail of a real `edgeroute serve`, driven by the openai SDK: one JSON
record per request in the server's output (answers, streams and refusals alike), and
the bodies of the key that asks for them in the local archive, which
`edgeroute audit show` reads back."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest

from tests.support.audit import audit_records
from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import GatewayProcess, registry_gateway, state_folder
from tests.support.openai_sdk import user_says

T = TypeVar("T")


@pytest.fixture(scope="module")
def state(workdir: Path) -> Path:
    return state_folder(workdir, "audit-trail")


@pytest.fixture(scope="module")
def served(fault_upstream: FaultUpstream, workdir: Path) -> Iterator[GatewayProcess]:
    models = [
        fault_model("instant", fault_upstream.url, "instant", tier="small"),
        fault_model("broken", fault_upstream.url, "status-500"),
    ]
    with registry_gateway(workdir, "audit-trail", models, {}) as process:
        yield process


def _client(served: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def keys(served: GatewayProcess) -> dict[str, dict[str, Any]]:
    return {
        "kept": served.create_key("kept", "--tenant", "acme", "--audit-bodies"),
        "plain": served.create_key("plain", "--tenant", "acme"),
    }


def _eventually(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 15) -> T:
    """``read()`` until ``done`` holds: a buffered answer's record and bodies are written
    after the answer is sent, so the client may look before they exist."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


def _record(served: GatewayProcess, request_id: str) -> dict[str, Any]:
    def mine() -> list[dict[str, Any]]:
        return [r for r in audit_records(served.log.read_text()) if r["request_id"] == request_id]

    found = _eventually(mine, bool)
    time.sleep(0.2)  # and never a second one
    found = mine()
    assert len(found) == 1, found
    return found[0]


def _show(served: GatewayProcess, request_id: str, *, bodies: bool = False) -> dict[str, Any]:
    def show() -> dict[str, Any]:
        done = served.cli("audit", "show", request_id, "--json")
        assert done.returncode == 0, done.stderr
        document: dict[str, Any] = json.loads(done.stdout)
        return document

    return _eventually(show, lambda d: not bodies or d.get("bodies") is not None)


@pytest.mark.parametrize("name", ["kept", "plain"])
def test_a_buffered_answer_is_audited_and_its_bodies_kept_if_asked(
    served: GatewayProcess, keys: dict[str, dict[str, Any]], name: str
) -> None:
    key = keys[name]
    raw = _client(served, str(key["api_key"])).chat.completions.with_raw_response.create(
        model="instant", messages=user_says("What is the capital of France?")
    )
    answer = raw.parse()
    request_id = raw.headers["x-request-id"]

    record = _record(served, request_id)
    assert record["key_id"] == key["key_id"] and record["tenant"] == "acme"
    assert (record["model"], record["tier"], record["status"]) == ("instant", "small", 200)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (11, 7)
    assert record["client_address"] == "127.0.0.1"
    assert record["endpoint"] == "/v1/chat/completions"
    assert record["bodies_kept"] is (name == "kept")

    document = _show(served, request_id, bodies=name == "kept")
    if name == "kept":
        assert document["request"]["messages"] == user_says("What is the capital of France?")
        assert document["answer"]["choices"][0]["message"]["content"] == (
            answer.choices[0].message.content
        )
        assert document["record"] == {
            k: v
            for k, v in record.items()
            if k not in {"level", "location", "message", "timestamp", "service"}
        }
    else:
        assert document["bodies"] is None
        assert [row["status"] for row in document["ledger"]] == [200]


def test_a_stream_is_audited_and_kept_assembled(
    served: GatewayProcess, keys: dict[str, dict[str, Any]]
) -> None:
    client = _client(served, str(keys["kept"]["api_key"]))
    raw = client.chat.completions.with_raw_response.create(
        model="instant", messages=user_says("Stream please"), stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    request_id = raw.headers["x-request-id"]

    assert _record(served, request_id)["bodies_kept"] is True
    document = _show(served, request_id, bodies=True)
    assert text and document["answer"]["choices"][0]["message"]["content"] == text


def test_refusals_are_audited_without_bodies(
    served: GatewayProcess, keys: dict[str, dict[str, Any]]
) -> None:
    before = len(audit_records(served.log.read_text()))
    with pytest.raises(openai.AuthenticationError):
        _client(served, "er-not-a-key").chat.completions.create(
            model="instant", messages=user_says("hi")
        )
    kept = _client(served, str(keys["kept"]["api_key"]))
    with pytest.raises(openai.NotFoundError):
        kept.chat.completions.create(model="no-such-model", messages=user_says("hi"))
    with pytest.raises(openai.InternalServerError):
        kept.chat.completions.create(model="broken", messages=user_says("hi"))

    refused = _eventually(
        lambda: audit_records(served.log.read_text())[before:], lambda r: len(r) >= 3
    )
    assert [(r["status"], bool(r["key_id"]), r["bodies_kept"]) for r in refused] == [
        (401, False, False),
        (404, True, False),
        (502, True, False),
    ]


def test_the_archive_is_the_owners_only(
    served: GatewayProcess, keys: dict[str, dict[str, Any]], state: Path
) -> None:
    _client(served, str(keys["kept"]["api_key"])).chat.completions.create(
        model="instant", messages=user_says("hi")
    )
    files = list((state / "audit").rglob("*.json"))
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for folder in path.relative_to(state).parents:
            assert stat.S_IMODE((state / folder).stat().st_mode) == 0o700, folder
