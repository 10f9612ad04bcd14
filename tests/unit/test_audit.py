"""The audit trail: one JSON record per request on the ``edgeroute.audit`` logger with
every field, refusals included; bodies archived only for keys (or operators) that ask,
in 0600 files swept after the retention period; ``edgeroute audit show`` finds them."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from edgeroute.pipeline.audit import AUDIT_LOGGER, AuditRecord, AuditTrail
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import AuditConfig, Settings
from edgeroute.store.archive import FolderArchive, object_key, open_archive
from edgeroute.store.base import KeyLimits, KeyPolicy
from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.tools.cli import main
from tests.support.audit import AuditLines, captured_audit
from tests.support.inprocess import CHAT, Client, chat_body, memory_gateway, sse_events
from tests.support.scripted_upstream import DEFAULT_TEXT, ScriptedUpstream, Status

REGISTRY = """
models:
  - {name: priced, endpoint: 'http://priced:1/v1', tier: small, retries: 0,
     price: {input_per_mtok: 1000, output_per_mtok: 2000}}
"""
FIELD_TYPES = {f.name: f.type for f in fields(AuditRecord)}
PYTHON_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list}


@pytest.fixture
def audit_lines() -> Iterator[AuditLines]:
    with captured_audit() as lines:
        yield lines


async def _client(
    gw: Gateway, *, limits: KeyLimits | None = None, bodies: bool = False, tenant: str = "acme"
) -> Client:
    secret, record = mint_key(
        "audited", tenant=tenant, limits=limits, policy=KeyPolicy(audit_bodies=bodies)
    )
    await gw.store.put_key(record)
    return Client(gw, secret)


def _archived(gw: Gateway, root: Path) -> Gateway:
    gw.audit = AuditTrail(FolderArchive(root, retention_days=30), gw.audit.bodies_for_all)
    return gw


def _one(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert len(mine) == 1, lines
    return mine[0]


def _typed(record: dict[str, Any]) -> None:
    assert record["service"] == AUDIT_LOGGER and record["message"] == "request"
    for name, kind in FIELD_TYPES.items():
        assert name in record, name
        expected = PYTHON_TYPES[str(kind)]
        value = record[name]
        if expected is float:
            assert isinstance(value, int | float) and not isinstance(value, bool), name
        else:
            assert type(value) is expected, (name, value)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_request_gets_one_record_with_every_field(
    upstream: ScriptedUpstream, audit_lines: AuditLines, stream: bool
) -> None:
    gw = memory_gateway(REGISTRY)
    client = await _client(gw)
    response = await client.chat("priced", stream=stream, max_tokens=20)
    assert response.status_code == 200

    record = _one(audit_lines(), response.headers["x-request-id"])
    _typed(record)
    key = await gw.store.list_keys()
    assert record["key_id"] == key[0].key_id and record["tenant"] == "acme"
    assert record["client_address"] == "127.0.0.1"
    assert record["endpoint"] == CHAT
    assert (record["model"], record["tier"], record["status"]) == ("priced", "small", 200)
    assert record["route_reason"] == response.headers["x-edgeroute-route-reason"]
    assert (record["prompt_tokens"], record["completion_tokens"]) == (7, 5)
    assert record["cost_usd_micros"] == 17_000  # 7 x $1000/M + 5 x $2000/M
    assert record["attempts"] == 1 and record["cache"] == response.headers["x-edgeroute-cache"]
    assert record["pii_classes"] == [] and record["guardrail"] == "not run"
    assert record["bodies_kept"] is False and record["latency_ms"] > 0
    assert client.secret not in json.dumps(audit_lines())


async def test_the_pii_classes_and_guardrail_outcome_of_the_call_are_recorded(
    audit_lines: AuditLines,
) -> None:
    from edgeroute.pipeline.audit import call_record
    from edgeroute.pipeline.call import Call
    from edgeroute.store.base import UsageRecord
    from edgeroute.types import Kind

    _, key = mint_key("k")
    call = Call(request_id="req_1", principal=key, kind=Kind.CHAT, payload={})
    call.pii_classes, call.guardrail = ("email", "phone"), "refused: harassment"
    usage = UsageRecord("req_1", key.key_id, key.tenant, "chat", "", "", 0, 0, 0, 1.0, 400, 0.0)
    record = call_record(call, usage, bodies_kept=False).as_json()
    assert record["pii_classes"] == ["email", "phone"]
    assert record["guardrail"] == "refused: harassment"


def _refusals() -> list[tuple[str, dict[str, Any], int, bool, str]]:
    """(case, request, status, authenticated, endpoint)."""
    return [
        ("no key", {"headers": {"authorization": ""}}, 401, False, CHAT),
        ("bad key", {"headers": {"authorization": "Bearer er-nope"}}, 401, False, CHAT),
        ("not a key", {"headers": {"authorization": "Bearer eyJhbGciOi.x.y"}}, 401, False, CHAT),
        ("bad parameter", {"body": chat_body("priced", temperature="hot")}, 400, True, CHAT),
        ("unknown model", {"body": chat_body("nope")}, 404, True, CHAT),
        ("over the rate", {"twice": True}, 429, True, CHAT),
        ("unknown route", {"path": "/v1/er-looks-like-a-key"}, 404, False, "unmatched"),
        ("body too large", {"body": chat_body("priced", user="x" * 5000)}, 413, False, CHAT),
        ("models", {"get": "/v1/models"}, 200, True, "/v1/models"),
        ("one model", {"get": "/v1/models/priced"}, 200, True, "/v1/models/{model_id:path}"),
    ]


@pytest.mark.parametrize(
    ("case", "request_", "status", "authenticated", "endpoint"),
    _refusals(),
    ids=[r[0] for r in _refusals()],
)
async def test_refusals_and_routes_outside_the_pipeline_are_audited(
    upstream: ScriptedUpstream,
    audit_lines: AuditLines,
    case: str,
    request_: dict[str, Any],
    status: int,
    authenticated: bool,
    endpoint: str,
) -> None:
    gw = memory_gateway(REGISTRY)
    gw = replace(gw, settings=gw.settings.model_copy(update={"max_body_bytes": 4096}))
    client = await _client(gw, limits=KeyLimits(rpm=1))
    headers = request_.get("headers")
    if "get" in request_:
        response = await _get(client, request_["get"])
    else:
        body = request_.get("body", chat_body("priced"))
        if request_.get("twice"):
            assert (await client.post(CHAT, body)).status_code == 200
        response = await client.post(request_.get("path", CHAT), body, headers)
    assert response.status_code == status, response.text

    lines = audit_lines()
    record = lines[-1]
    _typed(record)
    if "x-request-id" in response.headers:
        assert record["request_id"] == response.headers["x-request-id"]
    assert (record["status"], record["endpoint"]) == (status, endpoint)
    assert bool(record["key_id"]) is authenticated
    assert record["client_address"] == "127.0.0.1"
    assert len({line["request_id"] for line in lines}) == len(lines)  # one per request


async def _get(client: Client, path: str) -> Any:
    import httpx

    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        return await http.get(path, headers={"authorization": f"Bearer {client.secret}"})


async def test_healthz_is_not_audited(audit_lines: AuditLines) -> None:
    client = await _client(memory_gateway(REGISTRY))
    assert (await _get(client, "/healthz")).status_code == 200
    assert audit_lines() == []


def _documents(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))]


async def test_bodies_are_archived_only_for_keys_that_ask(
    upstream: ScriptedUpstream, audit_lines: AuditLines, tmp_path: Path
) -> None:
    root = tmp_path / "state" / "audit"
    gw = _archived(memory_gateway(REGISTRY), root)
    asking = await _client(gw, bodies=True, tenant="acme")
    silent = await _client(gw, tenant="acme")

    buffered = await asking.chat("priced", max_tokens=20)
    streamed = await asking.chat("priced", stream=True, max_tokens=20)
    for response in (await silent.chat("priced"), await silent.chat("priced", stream=True)):
        assert response.status_code == 200
    refused = await asking.chat("nope")
    assert refused.status_code == 404

    documents = {d["record"]["request_id"]: d for d in _documents(root)}
    ids = [buffered.headers["x-request-id"], streamed.headers["x-request-id"]]
    assert sorted(documents) == sorted(ids)  # the silent key's and the refusal's: none
    kept = documents[ids[0]]
    assert kept["request"]["messages"] == chat_body("priced")["messages"]
    assert kept["answer"] == buffered.json()
    assert kept["record"]["bodies_kept"] is True and kept["record"]["status"] == 200
    text = "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in sse_events(streamed.content)[:-1]
        if e.get("choices")
    )
    assert documents[ids[1]]["answer"]["choices"][0]["message"]["content"] == text == DEFAULT_TEXT
    record = _one(audit_lines(), ids[1])
    assert record["bodies_kept"] is True
    when = kept["record"]["created_at"]
    path = root / object_key("acme", ids[0], when).removeprefix("audit/")
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (path.parent, path.parent.parent, path.parent.parent.parent, root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


async def test_the_operator_may_archive_every_key(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    gw = memory_gateway(REGISTRY)
    gw.audit = AuditTrail(FolderArchive(tmp_path, 30), bodies_for_all=True)
    response = await (await _client(gw)).chat("priced")
    assert [d["record"]["request_id"] for d in _documents(tmp_path)] == [
        response.headers["x-request-id"]
    ]


async def test_a_failed_archive_write_is_logged_and_the_answer_stands(
    upstream: ScriptedUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    gw = _archived(memory_gateway(REGISTRY), blocker / "audit")
    response = await (await _client(gw, bodies=True)).chat("priced")
    assert response.status_code == 200 and response.json()["choices"]
    assert "could not archive the bodies" in caplog.text


async def test_an_upstream_failure_keeps_no_bodies(
    upstream: ScriptedUpstream, audit_lines: AuditLines, tmp_path: Path
) -> None:
    upstream.script("priced", Status(500, "model crashed"))
    gw = _archived(memory_gateway(REGISTRY), tmp_path)
    response = await (await _client(gw, bodies=True)).chat("priced")
    assert response.status_code == 502
    record = _one(audit_lines(), response.headers["x-request-id"])
    assert record["status"] == 502 and record["bodies_kept"] is False
    assert _documents(tmp_path) == []


async def test_the_sweep_deletes_expired_documents_only(tmp_path: Path) -> None:
    archive = FolderArchive(tmp_path, retention_days=2)
    now = time.time()
    await archive.put("acme", "req_old", now - 3 * 86_400, {"n": 1})
    await archive.put("acme", "req_young", now - 86_400, {"n": 2})
    await archive.put("beta", "req_today", now, {"n": 3})
    old = tmp_path / object_key("acme", "req_old", now - 3 * 86_400).removeprefix("audit/")
    young = tmp_path / object_key("acme", "req_young", now - 86_400).removeprefix("audit/")
    os.utime(old, (now - 3 * 86_400, now - 3 * 86_400))  # written three days ago
    os.utime(young, (now - 86_400, now - 86_400))

    assert archive.sweep(now) == 1
    assert not old.exists() and not old.parent.exists()  # its empty day folder too
    assert young.is_file() and (await archive.find("req_today")) == {"n": 3}
    assert archive.sweep(now) == 0


async def test_names_cannot_leave_their_tenant_folder(tmp_path: Path) -> None:
    archive = FolderArchive(tmp_path / "audit", retention_days=1)
    await archive.put("../..", "../../escape", time.time(), {"n": 1})
    [written] = list((tmp_path / "audit").rglob("*.json"))
    assert written.is_relative_to(tmp_path / "audit")
    assert await archive.find("../../escape") == {"n": 1}
    assert _names(tmp_path) == ["audit"]


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_local_archive_sits_beside_the_store(tmp_path: Path) -> None:
    settings = Settings(sqlite_path=str(tmp_path / "s" / "edgeroute.db"))
    archive = open_archive(settings)
    assert isinstance(archive, FolderArchive) and archive.root == tmp_path / "s" / "audit"
    assert open_archive(Settings(sqlite_path=":memory:")) is None
    bucket = open_archive(Settings(audit=AuditConfig(bucket="b")))
    assert bucket is not None and bucket.where == "s3://b/audit/"


def _cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    for name in list(os.environ):
        if name.startswith("EDGEROUTE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


async def _two_requests(path: Path) -> tuple[Any, Any]:
    """One request of a key whose bodies are kept, one of a key whose are not."""
    store = SQLiteStore(path / "edgeroute.db")
    gw = _archived(memory_gateway(REGISTRY, store=store), path / "audit")
    kept = await (await _client(gw, bodies=True)).chat("priced")
    ledger_only = await (await _client(gw)).chat("priced")
    await store.close()
    return kept, ledger_only


def test_audit_show_finds_a_request_by_id(
    upstream: ScriptedUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, ledger_only = asyncio.run(_two_requests(tmp_path))

    code, out, _ = _cli(monkeypatch, tmp_path, "audit", "show", kept.headers["x-request-id"])
    document = json.loads(out)
    assert code == 0 and document["answer"] == kept.json()
    assert document["record"]["request_id"] == kept.headers["x-request-id"]

    rid = ledger_only.headers["x-request-id"]
    code, out, _ = _cli(monkeypatch, tmp_path, "audit", "show", rid, "--json")
    document = json.loads(out)
    assert code == 0 and document["bodies"] is None
    assert [(r["request_id"], r["status"]) for r in document["ledger"]] == [(rid, 200)]

    code, out, err = _cli(monkeypatch, tmp_path, "audit", "show", "req_unknown")
    assert code == 1 and out == "" and "no request 'req_unknown'" in err

    code, out, _ = _cli(monkeypatch, tmp_path, "audit", "list", "--tenant", "acme", "--json")
    listed = {json.loads(line)["request_id"]: json.loads(line) for line in out.splitlines()}
    assert code == 0 and set(listed) == {kept.headers["x-request-id"], rid}
    assert listed[kept.headers["x-request-id"]]["bodies_kept"] is True
    assert listed[rid]["bodies_kept"] is False
