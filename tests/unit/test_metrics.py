"""The metrics one request emits, read back from both sinks: the EMF line CloudWatch
would ingest, and ``GET /metrics`` as Prometheus scrapes it. Same names (one list,
``observe/names.py``), no per-key label."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeroute.errors import UpstreamUnavailable
from edgeroute.observe import metrics as sinks
from edgeroute.observe.names import ALL, FORBIDDEN_LABELS
from edgeroute.pipeline.gateway import Gateway
from edgeroute.store.base import KeyLimits
from edgeroute.tools import prometheus
from edgeroute.tools.prometheus import PrometheusSink
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import Fail, ScriptedUpstream

REGISTRY = """
models:
  - {name: mid-a, endpoint: 'http://mid-a:1/v1', tier: medium, retries: 0, fallbacks: [mid-b],
     price: {input_per_mtok: 1, output_per_mtok: 3}}
  - {name: mid-b, endpoint: 'http://mid-b:1/v1', tier: medium, retries: 0,
     price: {input_per_mtok: 2, output_per_mtok: 2}}
"""


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Gateway, Client, PrometheusSink]]:
    """A gateway whose app serves /metrics as ``edgeroute serve`` installs it, and
    prints EMF as it would on Lambda."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "edgeroute-test")
    gw = memory_gateway(REGISTRY)
    client = Client(gw, "")
    prometheus.install(client.app)
    sink = client.app.state.prometheus
    try:
        yield gw, client, sink
    finally:
        sinks.uninstall(sink)


def _emf(out: str) -> list[dict[str, Any]]:
    """Each EMF line, a metric's one value unwrapped from the list EMF holds it in."""
    lines = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    return [{k: v[0] if isinstance(v, list) else v for k, v in line.items()} for line in lines]


async def _scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        page = await http.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page.text)
        for s in family.samples
    }


async def test_one_request_emits_the_same_metrics_to_emf_and_prometheus(
    served: tuple[Gateway, Client, PrometheusSink],
    upstream: ScriptedUpstream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, client, _ = served
    client.secret, _ = await add_key(gw, tenant="acme")
    upstream.script("mid-a", Fail(UpstreamUnavailable("down")))  # the fallback answers

    answer = await client.chat("mid-a")

    assert answer.status_code == 200 and answer.headers["x-edgeroute-model"] == "mid-b"
    lines = _emf(capsys.readouterr().out)
    request = next(line for line in lines if "Requests" in line)
    assert request["tier"] == "medium" and request["model"] == "mid-b"
    assert request["status"] == "200" and request["cache"] == "bypass"
    assert request["Requests"] == 1 and request["TokensIn"] == 7 and request["TokensOut"] == 5
    assert request["CostUSD"] == pytest.approx((7 * 2 + 5 * 2) / 1e6)
    assert request["Fallbacks"] == 1 and request["Degraded"] == 0
    sets = request["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert ["service"] in sets and ["service", "tier"] in sets and ["service", "model"] in sets
    assert not FORBIDDEN_LABELS & {d for s in sets for d in s}
    upstream_lines = [line for line in lines if "UpstreamLatencyMs" in line]
    assert [line["model"] for line in upstream_lines] == ["mid-b"]
    assert [line["model"] for line in lines if "UpstreamErrors" in line] == ["mid-a"]

    scraped = await _scrape(client)
    labels = (("cache", "bypass"), ("model", "mid-b"), ("status", "200"), ("tier", "medium"))
    assert scraped[("edgeroute_requests_total", labels)] == 1
    by_model = (("model", "mid-b"), ("tier", "medium"))
    assert scraped[("edgeroute_tokens_in_total", by_model)] == request["TokensIn"]
    assert scraped[("edgeroute_tokens_out_total", by_model)] == request["TokensOut"]
    assert scraped[("edgeroute_cost_usd_total", by_model)] == pytest.approx(request["CostUSD"])
    assert scraped[("edgeroute_fallbacks_total", by_model)] == 1
    assert scraped[("edgeroute_latency_ms_count", by_model)] == 1
    assert scraped[("edgeroute_latency_ms_sum", by_model)] == pytest.approx(request["LatencyMs"])
    assert scraped[("edgeroute_upstream_latency_ms_count", (("model", "mid-b"),))] == 1
    assert scraped[("edgeroute_upstream_errors_total", (("model", "mid-a"),))] == 1
    assert not any(FORBIDDEN_LABELS & dict(k[1]).keys() for k in scraped)


async def test_quota_refusals_and_streams_are_counted(
    served: tuple[Gateway, Client, PrometheusSink],
    upstream: ScriptedUpstream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw, client, _ = served
    client.secret, _ = await add_key(gw, limits=KeyLimits(rpm=1))

    first = await client.chat("mid-b", stream=True)
    refused = await client.chat("mid-b")

    assert (first.status_code, refused.status_code) == (200, 429)
    lines = _emf(capsys.readouterr().out)
    assert [line["limit"] for line in lines if "QuotaRefusals" in line] == [
        refused.json()["error"]["code"]
    ]
    statuses = sorted(line["status"] for line in lines if "Requests" in line)
    assert statuses == ["200", "429"]
    assert [line["model"] for line in lines if "TimeToFirstTokenMs" in line] == ["mid-b"]
    scraped = await _scrape(client)
    code = refused.json()["error"]["code"]
    assert scraped[("edgeroute_quota_refusals_total", (("limit", code),))] == 1
    assert scraped[("edgeroute_time_to_first_token_ms_count", (("model", "mid-b"),))] == 1


def test_every_metric_has_a_prometheus_series_and_no_per_key_label() -> None:
    sink = PrometheusSink()
    names = {m.name for m in sink.registry.collect()}
    assert {m.prometheus_name.removesuffix("_total") for m in ALL} == names
    assert all(not FORBIDDEN_LABELS & set(m.labels) for m in ALL)


def test_metrics_are_off_the_lambda_runtime_unless_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    sinks.observe({"model": "m"}, {ALL[-1]: 1})
    assert capsys.readouterr().out == ""
