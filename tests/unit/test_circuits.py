"""Passive circuit breaking (health/circuits.py) as callers see it: a target that keeps
failing is paused after N failures, its fallback answers meanwhile, and after the
cool-down one trial request goes through (half-open)."""

from __future__ import annotations

import asyncio
import time

import pytest

from edgeroute.config.policy import Circuit, Policy
from edgeroute.errors import UpstreamUnavailable
from edgeroute.health.circuits import HealthView, circuit_open_until
from edgeroute.pipeline.gateway import Gateway
from edgeroute.store.sqlite import SQLiteStore
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import Answer, Fail, ScriptedUpstream, Status

REGISTRY = """
models:
  - {name: fragile, endpoint: 'http://fragile:1/v1', tier: small, retries: 0}
  - {name: guarded, endpoint: 'http://guarded:1/v1', tier: small, retries: 0,
     fallbacks: [spare]}
  - {name: spare, endpoint: 'http://spare:1/v1', tier: small, retries: 0}
  - {name: sibling-a, endpoint: 'http://shared:1/v1', upstream_model: a, tier: small, retries: 0}
  - {name: sibling-b, endpoint: 'http://shared:1/v1', upstream_model: b, tier: small, retries: 0}
"""
# A circuit stays open far longer than any test takes, even on a loaded machine, except
# in the cool-down tests, which wait out a short one (and must act within it).
POLICY = Policy(
    circuit=Circuit(failures_to_open=2, window_s=3600, cool_down_s=120),
    health_ttl_s=0.05,
)
COOL_DOWN_S = 1.0
SHORT_COOL_DOWN = Policy(
    circuit=Circuit(failures_to_open=2, window_s=3600, cool_down_s=COOL_DOWN_S),
    health_ttl_s=0.05,
)


def gateway(store: SQLiteStore | None = None, policy: Policy = POLICY) -> Gateway:
    return memory_gateway(REGISTRY, policy=policy, store=store)


async def _client(policy: Policy) -> Client:
    gw = gateway(policy=policy)
    secret, _ = await add_key(gw)
    return Client(gw, secret)


@pytest.fixture
async def client() -> Client:
    return await _client(POLICY)


@pytest.fixture
async def cooling_client() -> Client:
    return await _client(SHORT_COOL_DOWN)


UNREACHABLE = UpstreamUnavailable("Upstream is unreachable (scripted).")


def down() -> Fail:
    return Fail(UNREACHABLE)


async def open_circuit(client: Client, model: str) -> None:
    """Send the requests whose failures open the model's circuit."""
    for _ in range(POLICY.circuit.failures_to_open):
        await client.chat(model)


async def test_n_failures_open_the_circuit_and_calls_stop(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("fragile", down())

    await open_circuit(client, "fragile")
    paused = await client.chat("fragile")

    assert paused.status_code == 503
    error = paused.json()["error"]
    assert error["code"] == "circuit_open"
    assert "Model 'fragile' failed repeatedly and is paused" in error["message"]
    assert "http://fragile:1" not in error["message"]  # where it runs is the log's
    assert int(paused.headers["retry-after"]) >= 1
    assert upstream.attempts() == ["fragile", "fragile"]  # the third never left


async def test_one_failure_short_of_n_keeps_it_closed(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("fragile", down(), Answer())

    assert (await client.chat("fragile")).status_code == 503
    assert (await client.chat("fragile")).status_code == 200


async def test_the_fallback_answers_while_the_circuit_is_open(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("guarded", down())
    await open_circuit(client, "guarded")  # each request fell back to 'spare'
    upstream.calls.clear()

    response = await client.chat("guarded")

    assert response.status_code == 200
    assert response.headers["x-edgeroute-model"] == "spare"
    assert "skipped guarded: circuit open until " in response.headers["x-edgeroute-route-reason"]
    assert upstream.attempts() == ["spare"]


async def test_after_the_cool_down_one_trial_goes_through_and_a_failure_reopens_at_once(
    cooling_client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("fragile", down())
    await open_circuit(cooling_client, "fragile")
    await asyncio.sleep(COOL_DOWN_S + 0.05)
    upstream.calls.clear()

    trial = await cooling_client.chat("fragile")
    after = await cooling_client.chat("fragile")

    assert trial.json()["error"]["code"] == "upstream_unavailable"  # it reached the upstream
    assert after.json()["error"]["code"] == "circuit_open"  # no second N failures needed
    assert upstream.attempts() == ["fragile"]


async def test_a_trial_that_succeeds_lets_traffic_through(
    cooling_client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("fragile", down(), down(), Answer())
    await open_circuit(cooling_client, "fragile")
    await asyncio.sleep(COOL_DOWN_S + 0.05)

    assert (await cooling_client.chat("fragile")).status_code == 200
    assert (await cooling_client.chat("fragile")).status_code == 200
    assert upstream.attempts() == ["fragile"] * 4


async def test_errors_the_caller_caused_do_not_count(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("fragile", Status(400, "unknown field"))

    for _ in range(POLICY.circuit.failures_to_open + 1):
        assert (await client.chat("fragile")).status_code == 400
    assert len(upstream.calls) == POLICY.circuit.failures_to_open + 1


async def test_circuits_are_per_target_not_per_server(
    client: Client, upstream: ScriptedUpstream
) -> None:
    upstream.script("sibling-a", down())
    await open_circuit(client, "sibling-a")

    assert (await client.chat("sibling-a")).json()["error"]["code"] == "circuit_open"
    assert (await client.chat("sibling-b")).status_code == 200  # same endpoint, other model


async def test_every_instance_on_the_store_sees_an_open_circuit(
    upstream: ScriptedUpstream,
) -> None:
    store = SQLiteStore(":memory:")
    one, other = gateway(store), gateway(store)
    secret, _ = await add_key(one)
    upstream.script("fragile", down())
    await open_circuit(Client(one, secret), "fragile")
    upstream.calls.clear()

    response = await Client(other, secret).chat("fragile")

    assert response.json()["error"]["code"] == "circuit_open"
    assert upstream.calls == []


async def test_record_failure_reports_the_failure_that_opened_it() -> None:
    gw = gateway()
    fragile = gw.registry.get("fragile")
    assert fragile is not None
    view = HealthView(gw.store, ttl_s=0.0)

    opened = [
        await view.record_failure(fragile, POLICY.circuit, UNREACHABLE, "acme") for _ in range(3)
    ]

    assert opened == [False, True, True]
    health = await view.snapshot([fragile], "acme")
    until = circuit_open_until(health.get("http://fragile:1/v1#fragile"), time.time())
    assert until is not None and until <= time.time() + POLICY.circuit.cool_down_s


class _Clock:
    """``time`` for the circuits module, with ``time()`` set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.mark.parametrize(
    ("first_at", "second_at", "opens"),
    [
        (-0.5, 0.5, True),  # a second apart, across the boundary: both count
        (1.0, 7199.0, False),  # in the next window, almost a whole window later
    ],
    ids=["burst-across-a-boundary", "a-window-apart"],
)
async def test_failures_count_over_a_sliding_window(
    first_at: float, second_at: float, opens: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows are aligned to the clock; the previous window's count, weighted by its
    overlap with the last window_s, counts too."""
    gw = gateway()
    model = gw.registry.get("fragile")
    assert model is not None
    window = POLICY.circuit.window_s
    boundary = (int(time.time()) // window + 1) * window
    clock = _Clock(boundary + first_at)
    monkeypatch.setattr("edgeroute.health.circuits.time", clock)
    view = HealthView(gw.store, ttl_s=0.0)

    first = await view.record_failure(model, POLICY.circuit, UNREACHABLE, "acme")
    clock.now = boundary + second_at
    second = await view.record_failure(model, POLICY.circuit, UNREACHABLE, "acme")

    assert (first, second) == (False, opens)
