"""Blast radius per tenant (health/circuits.py): a failure the request itself may have
caused (the upstream answered 500) opens only the sending tenant's view of the circuit;
the shared circuit opens on such failures only when two tenants fail in one window, and
at once on failures no request causes (connection refused, timeouts). 4xx answers never
count. Before, two requests from one tenant opened the circuit for everyone."""

from __future__ import annotations

from edgeroute.config.policy import Circuit, Policy
from edgeroute.errors import UpstreamUnavailable
from edgeroute.pipeline.gateway import Gateway
from edgeroute.store.sqlite import SQLiteStore
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import Answer, Fail, ScriptedUpstream, Status

REGISTRY = """
models:
  - {name: fragile, endpoint: 'http://fragile:1/v1', tier: small, retries: 0}
"""
POLICY = Policy(
    circuit=Circuit(failures_to_open=2, window_s=3600, cool_down_s=120), health_ttl_s=0.05
)


async def tenant(gw: Gateway, name: str) -> Client:
    secret, _ = await add_key(gw, tenant=name)
    return Client(gw, secret)


def gateway(store: SQLiteStore | None = None) -> Gateway:
    return memory_gateway(REGISTRY, policy=POLICY, store=store)


async def test_one_tenants_500s_open_its_own_circuit_only(upstream: ScriptedUpstream) -> None:
    gw = gateway()
    a, b = await tenant(gw, "tenant-a"), await tenant(gw, "tenant-b")
    upstream.script("fragile", Status(500, "cannot decode input_audio"))
    for _ in range(POLICY.circuit.failures_to_open):
        assert (await a.chat("fragile")).status_code == 502

    paused = await a.chat("fragile")
    upstream.script("fragile", Answer())
    served = [await b.chat("fragile") for _ in range(5)]

    assert paused.status_code == 503 and paused.json()["error"]["code"] == "circuit_open"
    assert [r.status_code for r in served] == [200] * 5
    assert len(upstream.calls) == POLICY.circuit.failures_to_open + 5  # A's third never left


async def test_another_instance_sees_the_tenants_circuit_and_serves_the_others(
    upstream: ScriptedUpstream,
) -> None:
    store = SQLiteStore(":memory:")
    one, other = gateway(store), gateway(store)
    a = await tenant(one, "tenant-a")
    upstream.script("fragile", Status(500))
    for _ in range(POLICY.circuit.failures_to_open):
        await a.chat("fragile")
    upstream.script("fragile", Answer())

    assert (await Client(other, a.secret).chat("fragile")).json()["error"]["code"] == (
        "circuit_open"
    )
    assert (await (await tenant(other, "tenant-b")).chat("fragile")).status_code == 200


async def test_failures_from_two_tenants_open_it_for_everyone(upstream: ScriptedUpstream) -> None:
    gw = gateway()
    a, b, c = [await tenant(gw, name) for name in ("tenant-a", "tenant-b", "tenant-c")]
    upstream.script("fragile", Status(500))
    assert (await a.chat("fragile")).status_code == 502
    assert (await b.chat("fragile")).status_code == 502
    upstream.script("fragile", Answer())

    for caller in (a, b, c):
        assert (await caller.chat("fragile")).json()["error"]["code"] == "circuit_open"
    assert len(upstream.calls) == 2


async def test_a_refused_connection_from_one_tenant_opens_it_for_everyone(
    upstream: ScriptedUpstream,
) -> None:
    gw = gateway()
    a, b = await tenant(gw, "tenant-a"), await tenant(gw, "tenant-b")
    upstream.script("fragile", Fail(UpstreamUnavailable("connection refused (scripted)")))
    for _ in range(POLICY.circuit.failures_to_open):
        assert (await a.chat("fragile")).status_code == 503

    assert (await b.chat("fragile")).json()["error"]["code"] == "circuit_open"


async def test_4xx_answers_never_count(upstream: ScriptedUpstream) -> None:
    gw = gateway()
    a, b = await tenant(gw, "tenant-a"), await tenant(gw, "tenant-b")
    upstream.script("fragile", Status(404, "no such route"))
    for caller in (a, b, a, b, a):
        assert (await caller.chat("fragile")).status_code == 502
    assert len(upstream.calls) == 5  # every one reached the upstream: nothing opened
