"""No secret ever appears: a real `edgeroute serve` holding known secrets (the dev key,
API keys of every kind, an upstream API key from an `EDGEROUTE_*` variable, fake AWS
credentials, a JWT a caller sends) is driven through a broad attack corpus (bad keys,
valid keys used wrongly, JWT-looking garbage, oversized bodies, bad parameters,
hostile text, failing upstreams); then every line it logged, every response's headers
and body, every row of its SQLite store, its usage spool and its audit archive are
scanned for each secret, raw, base64-encoded or as its SHA-256 hex.

Two things may hold a secret by design, and only these: the keys table's ``key_hash``
(an API key's SHA-256 is how it is looked up), and a response echoing what its own
request sent (a caller reading back its own input learns nothing)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.audit import audit_records
from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import GatewayProcess, registry_gateway, state_folder
from tests.support.openai_sdk import user_says

CHAT = "/v1/chat/completions"
UNREACHABLE = "http://127.0.0.1:9"
UPSTREAM_KEY_VARIABLE = "EDGEROUTE_VLLM_API_KEY"
MAX_BODY = 65_536


def _token(prefix: str, size: int = 24) -> str:
    return prefix + secrets.token_urlsafe(size)


def _jwt() -> str:
    """A well-formed HS256 JWT signed with a key the gateway does not know."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = part(json.dumps({"sub": "tenant-a", "exp": 4102444800}).encode())
    return f"{header}.{claims}.{part(secrets.token_bytes(32))}"


# Planted before the server starts; the API keys and the dev key join once minted.
AWS_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
    "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
    "AWS_SESSION_TOKEN": secrets.token_urlsafe(60),
}
UPSTREAM_KEY = _token("sk-upstream-")
JWT = _jwt()


def forms(secret: str) -> dict[str, str]:
    """The ways a secret could be written down."""
    return {
        "raw": secret,
        "base64": base64.b64encode(secret.encode()).decode().rstrip("="),
        "sha256": hashlib.sha256(secret.encode()).hexdigest(),
    }


def find_secrets(
    text: str, planted: Mapping[str, str], skip: frozenset[str] = frozenset()
) -> list[str]:
    """``name (form)`` for every planted secret in ``text``, but those named in ``skip``."""
    return [
        f"{name} ({form})"
        for name, secret in planted.items()
        if name not in skip
        for form, written in forms(secret).items()
        if written in text
    ]


def test_the_scan_finds_what_is_planted() -> None:
    planted = {"api key": "er-" + "a" * 40}
    line = json.dumps({"message": "checking er-" + "a" * 40})
    assert find_secrets(line, planted) == ["api key (raw)"]
    hashed = hashlib.sha256(planted["api key"].encode()).hexdigest()
    assert find_secrets(f"key_hash={hashed}", planted) == ["api key (sha256)"]
    assert find_secrets("nothing here", planted) == []


def _models(fault_url: str) -> list[dict[str, object]]:
    credential = {"credential": {"env": UPSTREAM_KEY_VARIABLE}}
    short = {"timeouts": {"connect": 1, "read": 1, "total": 2}}

    def fault(name: str, behaviour: str, **extra: object) -> dict[str, object]:
        return fault_model(name, fault_url, behaviour, **credential, **extra)

    def aws(name: str, protocol: str, upstream: str) -> dict[str, object]:
        return fault_model(name, UNREACHABLE, upstream, protocol=protocol, **short)

    return [
        fault("instant", "instant"),
        fault("broken", "status-500"),
        fault("overloaded", "status-503"),
        fault("echoes-key-400", "echo-400"),
        fault("echoes-key-401", "echo-401"),
        fault("hangs", "timeout", **short),
        fault("resets", "reset"),
        fault("cuts", "cut"),
        fault("malformed", "malformed"),
        fault("stream-error", "stream-error"),
        fault_model("unreachable", UNREACHABLE + "/v1", "instant", **credential, **short),
        aws("bedrock-down", "bedrock", "anthropic.claude-3-haiku-20240307-v1:0"),
        aws("sagemaker-down", "sagemaker", "internal-endpoint"),
    ]


@pytest.fixture(scope="module")
def state(workdir: Path) -> Path:
    return state_folder(workdir, "secret-scan")


@pytest.fixture(scope="module")
def served(fault_upstream: FaultUpstream, workdir: Path, state: Path) -> Iterator[GatewayProcess]:
    env = {
        **AWS_SECRETS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        UPSTREAM_KEY_VARIABLE: UPSTREAM_KEY,
        "EDGEROUTE_USAGE_SPOOL": str(state / "usage-spool.jsonl"),
        "EDGEROUTE_MAX_BODY_BYTES": str(MAX_BODY),
        "EDGEROUTE_KEY_CACHE_TTL": "0",
    }
    process = registry_gateway(workdir, "secret-scan", _models(fault_upstream.url), env).start()
    try:
        yield process
    finally:
        process.stop()


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def sent(self) -> str:
        return f"{self.method} {self.path} {self.headers} {self.body.decode(errors='replace')}"


@dataclass(frozen=True)
class Exchange:
    probe: Probe
    status: int
    answer: str  # headers and body as received


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _chat(model: str, key: str, **extra: Any) -> Probe:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return Probe("POST", CHAT, _bearer(key), json.dumps(body).encode())


def _raw(key: str, body: bytes) -> Probe:
    return Probe("POST", CHAT, {**_bearer(key), "content-type": "application/json"}, body)


def _corpus(keys: dict[str, str]) -> list[Probe]:
    victim = keys["victim"]
    basic = base64.b64encode(f"{victim}:".encode()).decode()
    probes = [
        # Bad keys and keys sent wrongly.
        Probe("POST", CHAT, {}, json.dumps({"model": "instant"}).encode()),
        Probe("POST", CHAT, {"authorization": "Bearer"}, b"{}"),
        _chat("instant", "er-" + "0" * 43),
        _chat("instant", victim[:-1]),
        _chat("instant", victim + "x"),
        _chat("instant", JWT),
        _chat("instant", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."),
        _chat("instant", "Bearer " + victim),
        Probe("POST", CHAT, {"authorization": f"Basic {basic}"}, b"{}"),
        Probe("POST", CHAT, {"authorization": f"Token {victim}"}, b"{}"),
        Probe("POST", CHAT, {"x-api-key": keys["revoked"]}, b"{}"),
        Probe("GET", f"/v1/models?api_key={victim}", {}),
        Probe("GET", f"/v1/{victim}", _bearer(victim)),
        # Valid keys used wrongly.
        _chat("instant", keys["revoked"]),
        _chat("instant", keys["fenced"]),
        _chat("broken", keys["narrow"]),
        _chat("instant", keys["limited"]),
        _chat("instant", keys["limited"]),
        Probe("GET", "/v1/usage?tenant=other", _bearer(victim)),
        Probe("GET", "/v1/usage?limit=1&limit=2", _bearer(victim)),
        # Oversized bodies.
        _chat("instant", victim, user="x" * (MAX_BODY + 1)),
        _raw(victim, b"[" * 50_000 + b"]" * 50_000),
        # Bad parameters.
        _chat("instant", victim, temperature="hot"),
        _chat("instant", victim, max_tokens=1e30),
        _chat("instant", victim, stream="yes"),
        _chat("instant", victim, n=10**6),
        _chat(12, victim),  # type: ignore[arg-type]
        _chat("no-such-model", victim),
        Probe("POST", "/v1/completions", _bearer(victim), b'{"model":"instant","best_of":1e6}'),
        Probe("POST", "/v1/embeddings", _bearer(victim), b'{"model":"instant","input":[[]]}'),
        # Hostile text.
        _raw(victim, b'{"model":"instant","messages":[{"role":"user","content":"\\ud800"}]}'),
        _raw(victim, b'{"model":"instant","messages":[{"role":"user","content":"a\\u0000b"}]}'),
        _chat("instant", victim, messages=[{"role": "user", "content": "\u202eabc\u200b\ufeff"}]),
        _raw(victim, b'{"model": "instant", "messages": \xff}'),
        _raw(victim, b"not json at all"),
    ]
    # Failing upstreams, buffered and streamed, and answers for every kind of key.
    failing = ["broken", "overloaded", "echoes-key-400", "echoes-key-401", "hangs", "resets"]
    failing += ["unreachable"]
    failing += ["bedrock-down", "sagemaker-down"]
    for model in failing:
        probes += [_chat(model, victim), _chat(model, victim, stream=True)]
    probes += [_chat(m, victim, stream=True) for m in ("cuts", "malformed", "stream-error")]
    for name in ("victim", "kept", "admin", "dev"):
        probes += [_chat("instant", keys[name]), _chat("instant", keys[name], stream=True)]
    probes += [
        Probe("GET", "/v1/models", _bearer(victim)),
        Probe("GET", "/v1/usage?group_by=tenant", _bearer(keys["admin"])),
    ]
    return probes


def _exchange(client: httpx.Client, probe: Probe) -> Exchange:
    response = client.request(probe.method, probe.path, headers=probe.headers, content=probe.body)
    answer = json.dumps(dict(response.headers)) + "\n" + response.text
    return Exchange(probe, response.status_code, answer)


@pytest.fixture(scope="module")
def keys(served: GatewayProcess, state: Path) -> dict[str, str]:
    def mint(name: str, *extra: str) -> str:
        return str(served.create_key(name, *extra)["api_key"])

    minted = {
        "victim": mint("victim", "--tenant", "t1"),
        "kept": mint("kept", "--tenant", "t1", "--audit-bodies"),
        "admin": mint("admin", "--admin"),
        "fenced": mint("fenced", "--ip-allow", "10.0.0.0/8"),
        "narrow": mint("narrow", "--models", "instant"),
        "limited": mint("limited", "--rpm", "1"),
        "revoked": mint("revoked"),
        "dev": (state / "dev-key").read_text().strip(),
    }
    assert served.cli("keys", "revoke", "revoked").returncode == 0
    return minted


@pytest.fixture(scope="module")
def attacked(served: GatewayProcess, keys: dict[str, str]) -> tuple[list[Exchange], list[str]]:
    """The corpus sent, the openai SDK's calls made, and the server stopped (its log,
    store and spool complete); the exchanges and the CLI's own output."""
    with httpx.Client(base_url=served.url, timeout=30) as client:
        exchanges = [_exchange(client, probe) for probe in _corpus(keys)]
    sdk = openai.OpenAI(base_url=served.url + "/v1", api_key=keys["kept"], max_retries=0)
    completion = sdk.chat.completions.create(model="instant", messages=user_says("hello"))
    streamed = sdk.chat.completions.create(model="instant", messages=user_says("hi"), stream=True)
    outputs = [completion.model_dump_json(), *(c.model_dump_json() for c in streamed)]
    outputs += [
        served.cli("keys", "list").stdout,
        served.cli("audit", "list", "--tenant", "t1").stdout,
    ]
    served.stop()
    return exchanges, outputs


def _planted(keys: dict[str, str]) -> dict[str, str]:
    return {
        **{f"api key '{name}'": key for name, key in keys.items()},
        f"upstream key ({UPSTREAM_KEY_VARIABLE})": UPSTREAM_KEY,
        **AWS_SECRETS,
        "a caller's JWT": JWT,
    }


def test_the_corpus_reached_every_kind_of_answer(
    attacked: tuple[list[Exchange], list[str]], served: GatewayProcess
) -> None:
    exchanges, _ = attacked
    statuses = {e.status for e in exchanges}
    assert {200, 400, 401, 403, 404, 413, 429, 502, 503, 504} <= statuses, sorted(statuses)
    assert not [e.probe.sent()[:200] for e in exchanges if e.status == 500]
    records = audit_records(served.log.read_text())
    assert len(records) >= len(exchanges)  # every request audited


def test_no_log_line_holds_a_secret(
    attacked: tuple[list[Exchange], list[str]], served: GatewayProcess, keys: dict[str, str]
) -> None:
    planted = _planted(keys)
    leaks = {
        n: found
        for n, line in enumerate(served.log.read_text().splitlines(), 1)
        if (found := find_secrets(line, planted))
    }
    assert not leaks, leaks


def test_no_response_holds_a_secret_its_request_did_not_send(
    attacked: tuple[list[Exchange], list[str]], keys: dict[str, str]
) -> None:
    exchanges, outputs = attacked
    planted = _planted(keys)
    leaks = []
    for exchange in exchanges:
        sent = exchange.probe.sent()
        own = frozenset(name for name, secret in planted.items() if secret in sent)
        if found := find_secrets(exchange.answer, planted, own):
            leaks.append((exchange.probe.sent()[:120], exchange.status, found))
    leaks += [
        ("sdk or cli output", 0, found) for o in outputs if (found := find_secrets(o, planted))
    ]
    assert not leaks, leaks


def _text(value: Any) -> Any:
    """A column's value as text: blobs (cache entries, maybe zlib-compressed) decoded."""
    if not isinstance(value, bytes):
        return value
    with contextlib.suppress(zlib.error):
        value = zlib.decompress(value)
    return value.decode(errors="replace")


def _rows(database: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, row) for every row of every table."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        query = "SELECT name FROM sqlite_master WHERE type='table'"
        for (table,) in connection.execute(query).fetchall():
            cursor = connection.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                yield table, {c: _text(v) for c, v in zip(columns, row, strict=True)}
    finally:
        connection.close()


def test_no_stored_item_holds_a_secret(
    attacked: tuple[list[Exchange], list[str]], state: Path, keys: dict[str, str]
) -> None:
    planted = _planted(keys)
    leaks: list[tuple[str, list[str]]] = []
    counted = {"api_keys": 0, "usage": 0, "archive": 0}
    for table, row in _rows(state / "edgeroute.db"):
        if table == "api_keys":
            body = json.loads(row.pop("body"))
            body.pop("key_hash")  # an API key's SHA-256, by design
            row["body"] = json.dumps(body)
        counted[table] = counted.get(table, 0) + 1
        if found := find_secrets(json.dumps(row), planted):
            leaks.append((f"{table}: {json.dumps(row)[:160]}", found))
    spool = state / "usage-spool.jsonl"
    if spool.exists():
        leaks += [("spool", f) for f in [find_secrets(spool.read_text(), planted)] if f]
    for path in (state / "audit").rglob("*"):
        if path.is_file():
            counted["archive"] += 1
            if found := find_secrets(path.read_text(), planted):
                leaks.append((str(path), found))
    assert not leaks, leaks
    assert counted["api_keys"] >= len(keys) and counted["usage"] > 20 and counted["archive"] >= 3
    assert os.path.getsize(state / "edgeroute.db") > 0
