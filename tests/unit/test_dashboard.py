"""GET /dashboard, in process: who may see it (an admin key, or the session a POSTed
admin key signs), bad input named, and the figures it shows equal to the ledger's. The
browser's view (every chart drawn, a screenshot) is tests/acceptance/test_dashboard_browser.py."""

from __future__ import annotations

import re
import time
from collections import Counter

import httpx
import pytest

from edgeroute.api.app import create_app
from edgeroute.store.report import percentile
from edgeroute.store.usage import GroupBy
from tests.support.traffic import Traffic, known_mix


@pytest.fixture
async def traffic(monkeypatch: pytest.MonkeyPatch) -> Traffic:
    return await known_mix(monkeypatch)


def _http(traffic: Traffic) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(traffic.gw))
    return httpx.AsyncClient(transport=transport, base_url="https://gateway")


def _values(page: str, chart: str) -> dict[str, float]:
    """``label -> data-value`` of each bar of one chart."""
    figure = re.search(rf'<figure class="chart" id="{chart}".*?</figure>', page, re.S)
    assert figure, f"no chart {chart}"
    bars = re.findall(r'<g class="bar" data-label="([^"]*)" data-value="([^"]*)"', figure[0])
    return {label: float(value) for label, value in bars}


async def test_an_admin_key_sees_the_ledger_s_figures(traffic: Traffic) -> None:
    async with _http(traffic) as http:
        page = await http.get(
            "/dashboard?range=1h", headers={"authorization": f"Bearer {traffic.admin_secret}"}
        )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    store, now = traffic.gw.store, time.time()
    records = [r for r in await store.query_usage(now - 3600, now + 1) if not r.failed_attempt]
    by: tuple[GroupBy, ...] = ("model", "tenant", "key")
    for chart in by:
        groups = await store.summarize_usage(now - 3600, now + 1, None, chart)
        assert _values(page.text, f"calls-by-{chart}") == {g.group: g.requests for g in groups}
        spend = _values(page.text, f"spend-by-{chart}")
        assert spend == pytest.approx({g.group: g.cost_usd_micros / 1e6 for g in groups})
    assert sum(_values(page.text, "calls-by-tenant").values()) == len(records) == 12
    latency = _values(page.text, "latency-by-tier")
    small = sorted(r.latency_ms for r in records if r.tier == "small")
    assert latency["small p95"] == percentile(small, 95) == small[-1]
    edge = sum(r.tier == "edge" for r in records) / sum(bool(r.tier) for r in records)
    assert _values(page.text, "edge-share")["edge"] == pytest.approx(edge, abs=1e-6)
    hits = sum(r.cache_hit for r in records)
    assert hits == 1 and _values(page.text, "cache")["hits"] == pytest.approx(hits / 12, abs=1e-6)
    rates = _values(page.text, "rates")
    assert rates["errors"] == pytest.approx(2 / 12, abs=1e-6)  # the 502 and the 429
    assert rates["fallbacks"] == pytest.approx(1 / 12, abs=1e-6)
    auto = [r for r in records if r.asked == "auto"]
    assert len(auto) == 2 and _values(page.text, "routing-by-tier") == dict(
        Counter(r.tier for r in auto)
    )
    assert sum(_values(page.text, "routing-why").values()) == 2


async def test_a_browser_signs_in_once_and_keeps_a_session(traffic: Traffic) -> None:
    async with _http(traffic) as http:
        first = await http.get("/dashboard", headers={"accept": "text/html"})
        assert first.status_code == 401 and 'name="key"' in first.text
        signed = await http.post(
            "/dashboard/session",
            content=f"key={traffic.admin_secret}",
            headers={"content-type": "application/x-www-form-urlencoded", "accept": "text/html"},
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "Path=/dashboard" in cookie and "SameSite=strict" in cookie
        assert traffic.admin_secret not in cookie
        page = await http.get("/dashboard")
        assert page.status_code == 200 and 'id="spend-by-model"' in page.text
        forged = http.cookies["edgeroute_dashboard"][:-1] + "0"
        http.cookies.set("edgeroute_dashboard", forged, path="/dashboard")
        assert (await http.get("/dashboard")).status_code == 401


async def test_keys_that_are_not_an_admin_s_are_refused(traffic: Traffic) -> None:
    async with _http(traffic) as http:
        user = {"authorization": f"Bearer {traffic.user_secret}"}
        refused = await http.get("/dashboard", headers=user)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "admin_only"
        assert (await http.get("/dashboard/data", headers=user)).status_code == 403
        anonymous = await http.get("/dashboard/data")
        assert anonymous.status_code == 401 and "admin key" in anonymous.json()["error"]["message"]
        by_form = await http.post("/dashboard/session", content=f"key={traffic.user_secret}")
        assert by_form.status_code == 403 and "set-cookie" not in by_form.headers
        wrong = await http.post("/dashboard/session", content="key=sk-not-a-key")
        assert wrong.status_code == 401
        browser = await http.post(
            "/dashboard/session", content="key=sk-not-a-key", headers={"accept": "text/html"}
        )
        assert browser.status_code == 401 and 'role="alert"' in browser.text


@pytest.mark.parametrize(
    ("request_line", "param"),
    [(("GET", "/dashboard?range=2y"), "range"), (("POST", "/dashboard/session"), "key")],
)
async def test_bad_input_is_named(
    traffic: Traffic, request_line: tuple[str, str], param: str
) -> None:
    method, url = request_line
    async with _http(traffic) as http:
        answer = await http.request(
            method, url, headers={"authorization": f"Bearer {traffic.admin_secret}"}, content=b""
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


async def test_labels_are_escaped(traffic: Traffic) -> None:
    from edgeroute.store.keys import mint_key
    from tests.support.inprocess import Client

    secret, key = mint_key("x", tenant='<script>alert("t")</script>')
    await traffic.gw.store.put_key(key)
    assert (await Client(traffic.gw, secret).chat("small-a")).status_code == 200
    async with _http(traffic) as http:
        page = await http.get(
            "/dashboard", headers={"authorization": f"Bearer {traffic.admin_secret}"}
        )
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
