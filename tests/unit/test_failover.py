"""Failover as callers and operators see it: every failure class ends on the fallback
with the right circuit state, a target the probe marks down gets no traffic, and a
request whose tier is down or failing is answered from a lower tier, labelled degraded.

Requests go through the gateway's HTTP app in process; upstream calls go to the scripted
upstream (the credential case to the real OpenAI adapter, which reads the secret first).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from edgeroute.config.policy import Circuit, Policy
from edgeroute.config.registry import ModelSpec, Protocol
from edgeroute.edge.classifier import Classification
from edgeroute.errors import UpstreamTimeout, UpstreamUnavailable
from edgeroute.health.availability import iso
from edgeroute.health.circuits import HealthView, circuit_key, circuit_open_until
from edgeroute.pipeline import execute
from edgeroute.pipeline.gateway import Gateway
from edgeroute.upstreams import adapter_for
from edgeroute.upstreams.base import Upstream
from tests.support.audit import captured_audit
from tests.support.inprocess import Client, add_key, chat_body, ledger, memory_gateway
from tests.support.scripted_upstream import Fail, ScriptedUpstream, Status, Step

REGISTRY = """
models:
  - {name: small-a, endpoint: 'http://small-a:1/v1', tier: small, retries: 0}
  - {name: mid-a, endpoint: 'http://mid-a:1/v1', tier: medium, retries: 1, fallbacks: [mid-b]}
  - {name: mid-b, endpoint: 'http://mid-b:1/v1', tier: medium, retries: 0,
     price: {input_per_mtok: 2, output_per_mtok: 2}}
  - {name: big, endpoint: 'http://big:1/v1', tier: large, retries: 0, degrade: true}
  - {name: big-strict, endpoint: 'http://big-strict:1/v1', tier: large, retries: 0}
  - {name: locked, endpoint: 'http://locked:1/v1', tier: medium, retries: 1,
     credential: {secret: edgeroute/locked-token}, fallbacks: [mid-b]}
"""
POLICY = Policy(
    circuit=Circuit(failures_to_open=2, window_s=3600, cool_down_s=120), health_ttl_s=0.01
)
NO_DEGRADE = POLICY.model_copy(update={"degrade": False})


def _gateway(policy: Policy = POLICY) -> Gateway:
    return memory_gateway(REGISTRY, policy=policy)


async def _client(gw: Gateway, tenant: str = "acme") -> Client:
    secret, _ = await add_key(gw, tenant=tenant)
    return Client(gw, secret)


def _model(gw: Gateway, name: str) -> ModelSpec:
    model = gw.registry.get(name)
    assert model is not None
    return model


async def _open_until(gw: Gateway, name: str, tenant: str) -> float | None:
    """When ``name``'s circuit, as ``tenant`` sees it, closes again (None: closed)."""
    view = HealthView(gw.store, ttl_s=0.0)
    health = await view.snapshot(gw.registry.models(), tenant)
    return circuit_open_until(health.get(circuit_key(_model(gw, name))), time.time())


@pytest.fixture
def hard(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` requests classify as needing the large tier (no encoder loaded)."""
    c = Classification(
        task="code", complexity=0.9, known_language="en", prompt_tokens=12, modality=("text",)
    )
    monkeypatch.setattr("edgeroute.pipeline.run.classify", lambda payload: c)


# -- every failure class takes the fallback path ------------------------------------------


@pytest.mark.parametrize(
    ("step", "attempts", "shared"),
    [
        (Fail(UpstreamUnavailable("unreachable (scripted)")), ["mid-a", "mid-a", "mid-b"], True),
        (Fail(UpstreamTimeout("timed out (scripted)")), ["mid-a", "mid-a", "mid-b"], True),
        (Status(500, "model crashed"), ["mid-a", "mid-a", "mid-b"], False),
        (Status(429, "slow down", retry_after="600"), ["mid-a", "mid-b"], True),
        (Status(401, "bad key"), ["mid-a", "mid-b"], True),
        (Status(403, "forbidden"), ["mid-a", "mid-b"], True),
    ],
    ids=["connection", "timeout", "5xx", "429-retry-after", "401", "403"],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_each_failure_class_ends_on_the_fallback_and_counts(
    upstream: ScriptedUpstream, step: Step, attempts: list[str], shared: bool, stream: bool
) -> None:
    gw = _gateway()
    client, other = await _client(gw, "acme"), await _client(gw, "globex")
    upstream.script("mid-a", step)

    response = await client.chat("mid-a", stream=stream)
    await client.chat("mid-a", stream=stream)  # classes tried once need a second to open

    assert response.status_code == 200, response.text
    assert response.headers["x-edgeroute-model"] == "mid-b"
    assert "degraded" not in " ".join(response.headers)  # same tier: not degraded
    assert upstream.attempts()[: len(attempts)] == attempts
    assert await _open_until(gw, "mid-a", "acme") is not None
    # Answers that may be request-caused (5xx) open only the sender's circuit; the
    # endpoint's own state (unreachable, timeouts, 429, credentials) is everyone's.
    assert (await _open_until(gw, "mid-a", "globex") is not None) is shared
    upstream.calls.clear()
    assert (await other.chat("mid-a")).status_code == 200
    assert upstream.attempts()[0] == ("mid-b" if shared else "mid-a")


async def test_a_429_is_honoured_for_its_retry_after_not_the_cool_down(
    upstream: ScriptedUpstream,
) -> None:
    gw = _gateway()
    client = await _client(gw)
    upstream.script("mid-a", Status(429, "slow down", retry_after="600"))

    await client.chat("mid-a")

    until = await _open_until(gw, "mid-a", "acme")
    assert until is not None and until > time.time() + POLICY.circuit.cool_down_s + 300
    upstream.calls.clear()
    explained = (await client.post("/v1/route", chat_body("mid-a"))).json()
    assert explained["candidates"][0]["dropped"] == f"circuit open until {iso(until)}"


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS credentials anywhere: a secret cannot be read (and nothing waits on IMDS)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unreadable_credential_falls_back_counts_and_tells_the_operator(
    upstream: ScriptedUpstream,
    no_aws: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    stream: bool,
) -> None:
    real = adapter_for(_model(_gateway(), "locked"))

    def adapters(model: ModelSpec) -> Upstream:
        return real if model.name == "locked" else upstream

    monkeypatch.setattr(execute, "adapter_for", adapters)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    gw = _gateway()
    client, other = await _client(gw, "acme"), await _client(gw, "globex")

    answers = [await client.chat("locked", stream=stream) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200]
    assert {a.headers["x-edgeroute-model"] for a in answers} == {"mid-b"}
    assert "locked: upstream_credential_missing" in answers[0].headers["x-edgeroute-route-reason"]
    assert answers[0].headers["x-edgeroute-attempts"] == "2"  # not retried: no use
    assert await _open_until(gw, "locked", "globex") is not None  # shared: the endpoint's
    assert (await other.chat("locked")).headers["x-edgeroute-attempts"] == "1"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("'locked'" in e and "http://locked:1/v1" in e for e in errors), errors
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "{" in line]
    auth = [m for m in metrics if "UpstreamAuthFailures" in m]
    assert len(auth) == 2 and all(m["model"] == "locked" for m in auth)


async def test_a_refused_credential_is_logged_without_the_credential(
    upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    gw = _gateway()
    client = await _client(gw)
    upstream.script("mid-a", Status(403, "key sk-live-0123456789abcdef is not allowed"))

    assert (await client.chat("mid-a")).status_code == 200

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("'mid-a'" in e and "upstream_auth_failed" in e for e in errors), errors
    assert not any("sk-live" in e for e in errors)


# -- health that routes --------------------------------------------------------------------


async def _probe_says(gw: Gateway, name: str, ok: bool, down_since: float | None = None) -> None:
    now = time.time()
    sample: dict[str, Any] = {"ok": ok, "checked_at": now, "latency_ms": None}
    if down_since is not None:
        sample["down_since"] = down_since
    await gw.store.put_health(_model(gw, name).endpoint, sample, expires_at=now + 60)
    await asyncio.sleep(POLICY.health_ttl_s * 2)  # what instances read is this fresh


async def test_a_target_the_probe_marks_down_gets_no_traffic(upstream: ScriptedUpstream) -> None:
    gw = _gateway()
    client = await _client(gw)
    assert (await client.chat("mid-a")).headers["x-edgeroute-model"] == "mid-a"  # no samples
    await _probe_says(gw, "mid-a", ok=True)
    assert (await client.chat("mid-a")).headers["x-edgeroute-model"] == "mid-a"
    upstream.calls.clear()
    since = time.time() - 90
    await _probe_says(gw, "mid-a", ok=False, down_since=since)

    responses = [await client.chat("mid-a") for _ in range(3)]

    assert all(r.headers["x-edgeroute-model"] == "mid-b" for r in responses)
    assert upstream.attempts() == ["mid-b"] * 3
    reason = responses[0].headers["x-edgeroute-route-reason"]
    assert f"skipped mid-a: probe: down since {iso(since)}" in reason
    explained = (await client.post("/v1/route", chat_body("mid-a"))).json()
    assert explained["targets"] == ["mid-b"]
    dropped = explained["candidates"][0]
    assert dropped["model"] == "mid-a" and not dropped["kept"]
    assert dropped["dropped"] == f"probe: down since {iso(since)}"


async def test_a_down_model_without_fallbacks_is_a_503_naming_it(
    upstream: ScriptedUpstream,
) -> None:
    gw = _gateway()
    client = await _client(gw)
    await _probe_says(gw, "big-strict", ok=False)

    response = await client.chat("big-strict")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "upstream_down" and "'big-strict' is down" in error["message"]
    assert "http://" not in error["message"]
    assert upstream.calls == []


async def test_auto_skips_tiers_the_probe_marks_down_and_says_so(
    upstream: ScriptedUpstream, hard: None
) -> None:
    """The reported case: the probe marked medium and large down, /v1/route still chose them."""
    gw = _gateway()
    client = await _client(gw)
    for name in ("mid-a", "mid-b", "big", "big-strict", "locked"):
        await _probe_says(gw, name, ok=False)

    explained = (await client.post("/v1/route", chat_body("auto"))).json()
    response = await client.chat("auto")

    assert explained["model"] == "small-a" and explained["targets"] == ["small-a"]
    by_name = {c["model"]: c for c in explained["candidates"]}
    assert by_name["big"]["dropped"].startswith("probe: down since ")
    assert not by_name["big"]["kept"]
    assert explained["degraded"].startswith("answered by small below large: ")
    assert response.status_code == 200
    assert response.headers["x-edgeroute-model"] == "small-a"
    assert response.headers["x-edgeroute-degraded"] == "true"
    assert "big: probe: down since" in response.headers["x-edgeroute-degraded-reason"]
    assert upstream.attempts() == ["small-a"]


# -- degrade, do not strand ----------------------------------------------------------------


async def test_auto_degrades_when_its_tier_fails_and_the_ledger_and_audit_say_so(
    upstream: ScriptedUpstream, hard: None
) -> None:
    gw = _gateway()
    client = await _client(gw)
    upstream.script("big", Status(500, "crashed"))
    upstream.script("big-strict", Fail(UpstreamUnavailable("unreachable (scripted)")))

    with captured_audit() as audited:
        response = await client.chat("auto")

    assert response.status_code == 200, response.text
    assert response.headers["x-edgeroute-tier"] == "medium"  # the best tier below large
    assert response.headers["x-edgeroute-degraded"] == "true"
    reason = response.headers["x-edgeroute-degraded-reason"]
    assert reason.startswith("answered by medium below large: ")
    assert "big: upstream_error" in reason and "big-strict: upstream_unavailable" in reason
    request_id = response.headers["x-request-id"]
    (record,) = [r for r in await ledger(gw) if r.request_id == request_id]
    assert record.degraded == reason and record.tier == "medium"
    (line,) = [a for a in audited() if a["request_id"] == request_id]
    assert line["degraded"] == reason


async def test_a_tier_name_whose_tier_is_open_moves_down_not_up_to_a_failing_one(
    upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With medium's circuits open, a medium request went to the failing large model
    while small was healthy: now large is tried, then small answers, labelled."""
    gw = _gateway()
    client = await _client(gw)
    for name in ("mid-a", "mid-b", "locked"):
        await gw.store.open_circuit(circuit_key(_model(gw, name)), time.time() + 60)
    upstream.script("big", Status(500, "crashed"))
    upstream.script("big-strict", Status(500, "crashed"))
    easy = Classification("chat", 0.1, 5, ("text",), known_language="en")
    monkeypatch.setattr("edgeroute.pipeline.run.classify", lambda payload: easy)

    response = await client.chat("medium")

    assert response.status_code == 200, response.text
    assert response.headers["x-edgeroute-model"] == "small-a"
    assert response.headers["x-edgeroute-degraded"] == "true"
    reason = response.headers["x-edgeroute-degraded-reason"]
    assert "mid-a: circuit open until" in reason and "big: upstream_error" in reason


async def test_a_policy_that_does_not_degrade_answers_503(
    upstream: ScriptedUpstream, hard: None
) -> None:
    gw = _gateway(NO_DEGRADE)
    client = await _client(gw)
    for name in ("big", "big-strict"):
        await _probe_says(gw, name, ok=False)

    response = await client.chat("auto")

    assert response.status_code == 503
    assert "does not degrade" in response.json()["error"]["message"]
    assert upstream.calls == []


async def test_a_named_model_degrades_only_when_its_registry_entry_allows(
    upstream: ScriptedUpstream,
) -> None:
    gw = _gateway()
    client = await _client(gw)
    upstream.script("big", Status(500, "crashed"))
    upstream.script("big-strict", Status(500, "crashed"))

    strict = await client.chat("big-strict")
    allowed = await client.chat("big")

    assert strict.status_code == 502
    assert upstream.attempts()[0] == "big-strict" and "mid-a" not in upstream.attempts()[:1]
    assert allowed.status_code == 200
    assert allowed.headers["x-edgeroute-model"] == "mid-a"  # best lower tier, cheapest
    assert allowed.headers["x-edgeroute-degraded"] == "true"
    assert allowed.headers["x-edgeroute-degraded-reason"] == (
        "answered by medium below large: big: upstream_error"
    )


async def test_a_named_model_that_is_down_degrades_at_once_when_allowed(
    upstream: ScriptedUpstream,
) -> None:
    gw = _gateway()
    client = await _client(gw)
    await _probe_says(gw, "big", ok=False)

    explained = (await client.post("/v1/route", chat_body("big"))).json()
    response = await client.chat("big")

    assert explained["targets"] == ["mid-a"]
    assert explained["candidates"][-1]["why"] == "degrade fallback: below the tier asked for, large"
    assert response.headers["x-edgeroute-model"] == "mid-a"
    assert "big: probe: down since" in response.headers["x-edgeroute-degraded-reason"]
    assert upstream.attempts() == ["mid-a"]


def test_the_edge_protocol_has_nothing_to_probe() -> None:
    """Edge models run in-process: never marked down by a probe sample."""
    from edgeroute.health.availability import down_reason

    edge = ModelSpec(name="e", protocol=Protocol.EDGE, tier="edge")
    assert down_reason(edge, {"": {"ok": False}}, time.time()) is None
