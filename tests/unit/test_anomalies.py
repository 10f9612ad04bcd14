"""Usage anomalies from the ledger: a key or tenant far above its own hourly baseline,
the same failing request again and again; quiet keys are left alone. The scheduled
check reports them as the Anomalies metric, and the dashboard lists them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import httpx
import pytest

from edgeroute.api.app import create_app
from edgeroute.observe import metrics as sinks
from edgeroute.observe.names import Metric
from edgeroute.pipeline.anomaly_check import AnomalyCheck
from edgeroute.store.anomalies import HOUR, detect
from edgeroute.store.base import UsageRecord
from edgeroute.store.keys import mint_key
from tests.support.inprocess import memory_gateway

END = 1_800_000_000.0


def _line(n: int, key: str, tenant: str, at: float, **changes: object) -> UsageRecord:
    fields: dict[str, object] = {
        "request_id": f"r{key}{n}",
        "key_id": key,
        "tenant": tenant,
        "endpoint": "chat",
        "model": "m",
        "tier": "small",
        "prompt_tokens": 10,
        "completion_tokens": 10,
        "cost_usd_micros": 1000,
        "latency_ms": 5.0,
        "status": 200,
        "created_at": at,
        **changes,
    }
    return UsageRecord(**fields)  # type: ignore[arg-type]


def _ledger() -> list[UsageRecord]:
    lines = []
    for hour in range(1, 25):  # k1: 2 calls an hour for a day
        lines += [
            _line(hour * 10 + i, "k1", "acme", END - hour * HOUR - 60 * i - 1) for i in range(2)
        ]
    lines += [_line(1000 + i, "k1", "acme", END - 30 * i - 1) for i in range(60)]  # then 60
    lines += [_line(2000 + i, "k2", "quiet", END - 60 * i - 1) for i in range(5)]  # a first 5
    lines += [  # the same failing request, 12 times in the hour
        _line(
            3000 + i,
            "k3",
            "globex",
            END - 60 * i - 1,
            status=400,
            fingerprint="f00d",
            cost_usd_micros=0,
        )
        for i in range(12)
    ]
    return lines


def test_spikes_and_repeated_failures_are_found_and_quiet_keys_are_not() -> None:
    found = {(a.kind, a.subject): a for a in detect(_ledger(), END)}
    assert set(found) == {
        ("calls_spike", "key k1"),
        ("calls_spike", "tenant acme"),
        ("spend_spike", "key k1"),
        ("spend_spike", "tenant acme"),
        ("repeated_failures", "key k3"),
    }
    spike = found[("calls_spike", "key k1")]
    assert (spike.value, spike.baseline) == (60, 2.0)
    assert "f00d (400)" in found[("repeated_failures", "key k3")].detail
    assert found[("spend_spike", "key k1")].value == 60_000


class Recorded:
    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], dict[str, float]]] = []

    def observe(self, labels: Mapping[str, str], values: Mapping[Metric, float]) -> None:
        self.seen.append((dict(labels), {m.name: v for m, v in values.items()}))


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    sink = Recorded()
    sinks.install(sink)
    try:
        yield sink
    finally:
        sinks.uninstall(sink)


async def test_the_scheduled_check_reports_each_kind_and_waits_between_looks(
    recorded: Recorded,
) -> None:
    gw = memory_gateway("models: []")
    for line in _ledger():
        await gw.store.record_usage(line)
    check = AnomalyCheck(gw.store, every_s=300)

    assert len(await check.run_if_due(END) or []) == 5
    assert await check.run_if_due(END + 299) is None  # not due yet
    counts = {labels["kind"]: v["Anomalies"] for labels, v in recorded.seen if "Anomalies" in v}
    assert counts == {"calls_spike": 2, "spend_spike": 2, "repeated_failures": 1}


async def test_the_dashboard_lists_the_anomalies(monkeypatch: pytest.MonkeyPatch) -> None:
    gw = memory_gateway("models: []")
    for line in _ledger():
        await gw.store.record_usage(line)
    secret, admin = mint_key("ops", admin=True)
    await gw.store.put_key(admin)
    monkeypatch.setattr("edgeroute.api.dashboard.time.time", lambda: END)
    transport = httpx.ASGITransport(app=create_app(gw))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        page = await http.get("/dashboard", headers={"authorization": f"Bearer {secret}"})
    assert page.status_code == 200
    assert 'data-count="5"' in page.text and page.text.count('class="anomaly"') == 5
