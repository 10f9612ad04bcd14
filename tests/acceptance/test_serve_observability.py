"""`edgeroute serve` as operators scrape it: GET /metrics in Prometheus's format counts a
real request (no key needed, no per-key label)."""

from __future__ import annotations

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import GatewayProcess


def _samples(gateway: GatewayProcess) -> dict[str, list[dict[str, str]]]:
    page = httpx.get(gateway.url + "/metrics", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append({**sample.labels, "value": str(sample.value)})
    return out


def test_metrics_count_a_served_request(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    before = _samples(gateway).get("edgeroute_requests_total", [])
    answer = client.chat.completions.with_raw_response.create(
        model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert answer.http_response.status_code == 200
    after = _samples(gateway)

    def served(rows: list[dict[str, str]]) -> float:
        return sum(
            float(r["value"])
            for r in rows
            if r["model"] == "smollm2-135m" and r["status"] == "200" and r["tier"] == "small"
        )

    assert served(after["edgeroute_requests_total"]) == served(before) + 1
    assert any(r["model"] == "smollm2-135m" for r in after["edgeroute_upstream_latency_ms_count"])
    labels = {name for rows in after.values() for row in rows for name in row}
    assert not labels & {"key", "key_id", "tenant", "request_id"}
