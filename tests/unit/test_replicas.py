"""Replicas of one model: the registry format, the weighted choice among healthy replicas
(queue depth, requests in flight and time to first byte), retries that move to another
replica, each replica's own circuit, and the replica named in responses and the ledger."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from edgeroute.config.policy import Circuit
from edgeroute.config.registry import ModelSpec, parse_registry
from edgeroute.errors import ConfigError, UpstreamUnavailable
from edgeroute.health.circuits import circuit_key
from edgeroute.health.probe import endpoints
from edgeroute.pipeline import execute
from edgeroute.pipeline.replicas import LOAD, ReplicaChoice, ReplicaLoad
from edgeroute.types import Chunks, Json, Kind
from edgeroute.upstreams.base import Upstream
from tests.support.inprocess import Client, add_key, memory_gateway, sse_events
from tests.support.records import usage_line
from tests.support.scripted_upstream import ScriptedUpstream

REGISTRY = """
models:
  - name: pool
    tier: small
    retries: 1
    replicas:
      - {endpoint: 'http://a:1/v1', weight: 80, version: v1, region: us}
      - {endpoint: 'http://b:1/v1', weight: 20, version: v2, region: eu}
  - {name: single, endpoint: 'http://single:1/v1', tier: small, retries: 0}
"""


def pool(weights: tuple[float, ...] = (80, 20)) -> ModelSpec:
    replicas = ", ".join(
        f"{{endpoint: 'http://r{i}:1/v1', weight: {w}, name: r{i}}}" for i, w in enumerate(weights)
    )
    text = f"models:\n  - {{name: pool, tier: small, replicas: [{replicas}]}}\n"
    model = parse_registry(text, "models.yaml").get("pool")
    assert model is not None
    return model


def shares(choice: ReplicaChoice, model: ModelSpec, draws: int = 10_000) -> dict[str, float]:
    picked = Counter(str(getattr(choice.pick(model), "replica_label", None)) for _ in range(draws))
    return {label: count / draws for label, count in picked.items()}


def open_circuit(replica: ModelSpec) -> Json:
    return {circuit_key(replica): {"circuit_open_until": time.time() + 60}}


# The registry format


def test_a_single_endpoint_is_its_own_unlabelled_replica() -> None:
    single = parse_registry(REGISTRY, "models.yaml").get("single")
    assert single is not None and single.replica_set == (single,)
    assert (single.replica_label, single.weight) == ("", 1.0)


def test_each_replica_has_its_endpoint_label_and_circuit() -> None:
    model = parse_registry(REGISTRY, "models.yaml").get("pool")
    assert model is not None
    a, b = model.replica_set
    assert (a.endpoint, a.replica_label, a.replica_version, a.weight) == (
        "http://a:1/v1",
        "us/v1",
        "v1",
        80.0,
    )
    assert (b.name, b.tier, b.replica_label) == ("pool", "small", "eu/v2")
    assert circuit_key(a) != circuit_key(b)


def test_replicas_do_not_inherit_what_the_model_already_answered() -> None:
    model = parse_registry(REGISTRY, "models.yaml").get("pool")
    assert model is not None
    assert (model.replica_label, model.weight) == ("", 1.0)  # read before the copies exist
    assert [(r.replica_label, r.weight) for r in model.replica_set] == [
        ("us/v1", 80.0),
        ("eu/v2", 20.0),
    ]


def test_replica_without_name_or_labels_is_named_by_position() -> None:
    text = "models:\n  - {name: m, tier: small, replicas: [{endpoint: 'http://x/v1'}]}\n"
    (only,) = parse_registry(text, "m.yaml").models()[0].replica_set
    assert only.replica_label == "replica-1" and only.weight == 1.0


def test_probe_and_health_cover_every_replica() -> None:
    registry = parse_registry(REGISTRY, "models.yaml")
    assert set(endpoints(registry)) == {"http://a:1/v1", "http://b:1/v1", "http://single:1/v1"}


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (
            "endpoint: 'http://x/v1', replicas: [{endpoint: 'http://a/v1'}]",
            "give either 'endpoint' or 'replicas', not both",
        ),
        (
            "replicas: [{endpoint: 'http://a/v1'}, {endpoint: 'http://a/v1'}]",
            "replicas.1.endpoint: 'http://a/v1' is replicas.0's endpoint too",
        ),
        (
            "replicas: [{endpoint: 'http://a/v1', version: v1}, "
            "{endpoint: 'http://b/v1', version: v1}]",
            "replicas.0 is labelled 'v1' too; give each replica a distinct 'name'",
        ),
        ("replicas: [{weight: 3}]", "replicas.0: protocol 'openai' needs an 'endpoint' URL"),
        (
            "replicas: [{endpoint: 'http://a/v1', weight: 0}]",
            "every weight is 0; give at least one replica a weight above 0",
        ),
        ("replicas: [{endpoint: 'http://a/v1', weight: -1}]", "m.replicas.0.weight"),
        ("replicas: [{endpoint: 'ftp://a'}]", "m.replicas.0.endpoint"),
        ("replicas: [{endpoint: 'http://a/v1', colour: red}]", "m.replicas.0.colour"),
        ("protocol: edge, replicas: [{endpoint: 'http://a/v1'}]", "remove its 'replicas'"),
    ],
)
def test_bad_replica_lists_are_refused_naming_the_field(entry: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_registry(f"models:\n  - {{name: m, tier: small, {entry}}}\n", "m.yaml")
    assert "m.yaml: models.m" in str(refused.value) and says in str(refused.value)


def test_a_replica_credential_reads_only_allowed_variables() -> None:
    text = (
        "models:\n  - {name: m, tier: small, replicas: "
        "[{endpoint: 'http://a/v1', credential: {env: AWS_SECRET_ACCESS_KEY}}]}\n"
    )
    with pytest.raises(ConfigError, match=r"models\.m\.replicas\.0\.credential\.env"):
        parse_registry(text, "m.yaml")


# The choice


def test_weights_share_the_traffic() -> None:
    got = shares(ReplicaChoice(rng=random.Random(7), load=ReplicaLoad()), pool((80, 20)))
    assert abs(got["r0"] - 0.8) < 0.02 and abs(got["r1"] - 0.2) < 0.02
    canary = shares(ReplicaChoice(rng=random.Random(8), load=ReplicaLoad()), pool((95, 5)))
    assert abs(canary["r1"] - 0.05) < 0.01


def test_unhealthy_replicas_get_nothing() -> None:
    model = pool((50, 50, 50))
    r0, r1, r2 = model.replica_set
    health = {**open_circuit(r0), r1.endpoint: {"ok": False}, r2.endpoint: {"ok": True}}
    choice = ReplicaChoice(health=health, rng=random.Random(1), load=ReplicaLoad())
    assert shares(choice, model, 500) == {"r2": 1.0}
    no_data = ReplicaChoice(rng=random.Random(1), load=ReplicaLoad())
    assert set(shares(no_data, model, 500)) == {"r0", "r1", "r2"}  # no probe data: healthy


def test_no_healthy_replica_means_none() -> None:
    model = pool((1, 1))
    health = {k: v for r in model.replica_set for k, v in open_circuit(r).items()}
    assert ReplicaChoice(health=health).pick(model) is None


def test_a_drained_replica_gets_nothing() -> None:
    assert shares(ReplicaChoice(rng=random.Random(2), load=ReplicaLoad()), pool((1, 0))) == {
        "r0": 1.0
    }


def test_queue_depth_lowers_a_replicas_share() -> None:
    model = pool((1, 1))
    queued = {model.replica_set[0].endpoint: {"ok": True, "queue_depth": 3}}
    got = shares(ReplicaChoice(health=queued, rng=random.Random(3), load=ReplicaLoad()), model)
    assert abs(got["r1"] - 0.8) < 0.02  # weights 1/(1+3) and 1


def test_ties_go_to_the_replica_with_fewer_requests_in_flight() -> None:
    model = pool((1, 1))
    load = ReplicaLoad()
    load.started(model.replica_set[0])
    assert shares(ReplicaChoice(rng=random.Random(4), load=load), model, 500) == {"r1": 1.0}
    load.finished(model.replica_set[0])
    got = shares(ReplicaChoice(rng=random.Random(4), load=load), model)
    assert abs(got["r0"] - 0.5) < 0.03  # idle and unmeasured alike: an even split


def test_ties_go_to_the_replica_with_the_faster_first_byte() -> None:
    model = pool((1, 1))
    load = ReplicaLoad()
    load.ttfb_s = {circuit_key(model.replica_set[0]): 0.8, circuit_key(model.replica_set[1]): 0.1}
    assert shares(ReplicaChoice(rng=random.Random(5), load=load), model, 500) == {"r1": 1.0}
    load.ttfb_s[circuit_key(model.replica_set[0])] = 0.12  # within 1.5x: no preference
    got = shares(ReplicaChoice(rng=random.Random(5), load=load), model)
    assert 0.4 < got["r0"] < 0.6


def test_ewma_follows_observed_first_bytes() -> None:
    replica = pool((1,)).replica_set[0]
    load = ReplicaLoad()
    for _ in range(3):
        load.first_byte(replica, load.started(replica) - 1.0)
        load.finished(replica)
    assert load.ttfb_s[circuit_key(replica)] == pytest.approx(1.0, abs=0.01)
    load.first_byte(replica, time.perf_counter())  # a fast one moves it a fifth of the way
    assert load.ttfb_s[circuit_key(replica)] == pytest.approx(0.8, abs=0.01)
    assert load.outstanding[circuit_key(replica)] == 0


def test_a_retry_goes_to_a_replica_not_tried_yet() -> None:
    model = pool((99, 1))
    r0, r1 = model.replica_set
    choice = ReplicaChoice(rng=random.Random(6), load=ReplicaLoad())
    assert all(choice.pick(model, [r0]) is r1 for _ in range(100))
    assert choice.pick(model, [r0, r1]) is not None  # all tried: any healthy one again


# Through the gateway


class ByEndpoint(Upstream):
    """Answers as the scripted upstream does, except from endpoints listed as down."""

    def __init__(self) -> None:
        self.scripted = ScriptedUpstream()
        self.down: set[str] = set()
        self.calls: list[str] = []

    def _check(self, model: ModelSpec) -> None:
        self.calls.append(model.endpoint)
        if model.endpoint in self.down:
            raise UpstreamUnavailable("unreachable (scripted)", detail=model.endpoint)

    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        self._check(model)
        return await self.scripted.send(kind, payload, model)

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        self._check(model)
        async for chunk in self.scripted.stream(kind, payload, model):
            yield chunk


@pytest.fixture
def by_endpoint(monkeypatch: pytest.MonkeyPatch) -> ByEndpoint:
    upstream = ByEndpoint()
    monkeypatch.setattr(execute, "adapter_for", lambda model: upstream)
    return upstream


@pytest.mark.parametrize("stream", [False, True])
async def test_failed_replica_retries_on_the_other_then_its_circuit_keeps_it_out(
    by_endpoint: ByEndpoint, stream: bool
) -> None:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw)
    client = Client(gw, secret)
    by_endpoint.down.add("http://a:1/v1")
    for _ in range(100):  # until a failed often enough to open its circuit
        if by_endpoint.calls.count("http://a:1/v1") == Circuit().failures_to_open:
            break
        response = await client.chat("pool", stream=stream)
        assert response.status_code == 200
        assert response.headers["x-edgeroute-replica"] == "eu/v2"  # the label, not the URL
        if stream:
            assert sse_events(response.content)[-1] == "[DONE]"
    assert by_endpoint.calls.count("http://a:1/v1") == Circuit().failures_to_open
    by_endpoint.calls.clear()
    for _ in range(20):  # a's circuit is open: it receives nothing
        assert (await client.chat("pool", stream=stream)).headers["x-edgeroute-replica"] == "eu/v2"
    assert set(by_endpoint.calls) == {"http://b:1/v1"}
    records = await gw.store.query_usage(0, time.time() + 1, None)
    failed = [r for r in records if r.failed_attempt]
    assert failed and {(r.replica, r.version) for r in failed} == {("us/v1", "v1")}
    served = [r for r in records if not r.failed_attempt]
    assert {(r.replica, r.version, r.model) for r in served} == {("eu/v2", "v2", "pool")}
    single = await client.chat("single", stream=stream)
    assert single.status_code == 200 and "x-edgeroute-replica" not in single.headers
    # Every attempt, failed or streamed to its end, is out of flight; b's latency is known.
    assert all(count == 0 for count in LOAD.outstanding.values())
    model = gw.registry.get("pool")
    assert model is not None and circuit_key(model.replica_set[1]) in LOAD.ttfb_s


async def test_every_replica_down_is_a_503_naming_the_model(by_endpoint: ByEndpoint) -> None:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw)
    model = gw.registry.get("pool")
    assert model is not None
    for replica in model.replica_set:
        await gw.store.open_circuit(circuit_key(replica), time.time() + 60)
    response = await Client(gw, secret).chat("pool")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "circuit_open" and "Every replica of model 'pool'" in error["message"]
    assert by_endpoint.calls == []


async def test_usage_groups_by_replica_and_version() -> None:
    from dataclasses import replace

    from edgeroute.store.sqlite import SQLiteStore
    from edgeroute.store.usage import GroupBy, fold, ordered

    records = [
        replace(usage_line(f"r{i}", status=200, tokens=1), replica="a", version="v1")
        for i in range(19)
    ] + [replace(usage_line("c", status=502), replica="canary", version="v2")]
    store = SQLiteStore(":memory:")
    for record in records:
        await store.record_usage(record)

    async def rows(group_by: GroupBy) -> list[dict[str, object]]:
        summed = await store.summarize_usage(0, 1e12, None, group_by)
        # The store's sums are the same as folding the records in Python.
        assert summed == ordered(fold(records, group_by).values())
        return [g.as_row(group_by) for g in summed]

    by_version = {row["version"]: row for row in await rows("version")}
    assert (by_version["v1"]["requests"], by_version["v1"]["errors"]) == (19, 0)
    assert (by_version["v2"]["requests"], by_version["v2"]["errors"]) == (1, 1)
    assert by_version["v1"]["latency_ms_mean"] is not None
    assert [row["replica"] for row in await rows("replica")] == ["a", "canary"]
    await store.close()
