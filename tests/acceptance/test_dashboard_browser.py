"""The dashboard in a real browser: after a known mix of traffic, headless Chromium
signs in with the admin key through the form, every chart draws its bars, the figures
on the page equal the ledger's, and a phone-sized screenshot is written to
``test-output/`` for a person to look at.

Chromium and its driver are Debian's (``make test`` installs chromium and
chromium-driver when they are missing); the gateway runs in this process under uvicorn
on a free port, on the scripted upstream.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from edgeroute.api.app import create_app
from edgeroute.store.usage import GroupBy
from tests.support.gateway import free_port
from tests.support.traffic import Traffic, known_mix

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHARTS = (
    "spend-by-model",
    "calls-by-model",
    "spend-by-tenant",
    "calls-by-tenant",
    "spend-by-key",
    "calls-by-key",
    "edge-share",
    "latency-by-tier",
    "cache",
    "rates",
    "routing-by-tier",
    "routing-why",
)

pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
    reason="Debian's chromium and chromium-driver are not installed (make test installs "
    "them with apt-get; run `apt-get install chromium chromium-driver`)",
)


@pytest.fixture
async def traffic(monkeypatch: pytest.MonkeyPatch) -> Traffic:
    return await known_mix(monkeypatch)


@pytest.fixture
def base_url(traffic: Traffic) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(traffic.gw), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    # A phone: 390 CSS pixels wide (desktop Chromium will not make a window that narrow).
    metrics = {"width": 390, "height": 844, "pixelRatio": 2.0}
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def test_the_dashboard_draws_the_ledger_in_a_phone_sized_browser(
    traffic: Traffic, base_url: str, browser: object, request: pytest.FixtureRequest
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait

    assert isinstance(browser, WebDriver)
    browser.get(f"{base_url}/dashboard")
    assert "sign in" in browser.title
    browser.find_element(By.NAME, "key").send_keys(traffic.admin_secret)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(  # the dashboard, not the form, and all of it
        lambda b: (
            b.find_elements(By.CSS_SELECTOR, ".tile")
            and b.execute_script("return document.readyState") == "complete"
        )
    )
    assert browser.current_url == f"{base_url}/dashboard"
    assert traffic.admin_secret not in browser.current_url

    width = browser.execute_script("return document.documentElement.clientWidth")
    overflow = browser.execute_script("return document.documentElement.scrollWidth")
    assert width == 390 and overflow <= width, "the page scrolls sideways on a phone"
    drawn = {}
    for chart in CHARTS:
        figure = browser.find_element(By.ID, chart)
        bars = figure.find_elements(By.CSS_SELECTOR, "g.bar")
        assert bars, f"{chart} has no bars"
        assert figure.size["width"] <= 390, f"{chart} is wider than the phone"
        drawn[chart] = {
            str(b.get_attribute("data-label")): float(str(b.get_attribute("data-value")))
            for b in bars
        }
        rects = figure.find_elements(By.TAG_NAME, "rect")
        assert any(r.size["width"] > 0 and r.size["height"] > 0 for r in rects), chart

    now = time.time()
    store = traffic.gw.store
    by: tuple[GroupBy, ...] = ("model", "tenant", "key")
    for group_by in by:
        groups = await store.summarize_usage(now - 86400, now + 1, None, group_by)
        assert drawn[f"calls-by-{group_by}"] == {g.group: g.requests for g in groups}
        assert drawn[f"spend-by-{group_by}"] == pytest.approx(
            {g.group: g.cost_usd_micros / 1e6 for g in groups}
        )
    tiles = {
        str(t.get_attribute("data-figure")): float(str(t.get_attribute("data-value")))
        for t in browser.find_elements(By.CSS_SELECTOR, ".tile")
    }
    records = [r for r in await store.query_usage(now - 86400, now + 1) if not r.failed_attempt]
    assert tiles["requests"] == len(records)
    assert tiles["cost_usd"] == pytest.approx(sum(r.cost_usd_micros for r in records) / 1e6)
    assert tiles["cache_hit_rate"] == pytest.approx(
        sum(r.cache_hit for r in records) / len(records), abs=1e-6
    )

    folder = Path(request.config.rootpath) / "test-output"
    folder.mkdir(exist_ok=True)
    shot = folder / "dashboard-phone.png"
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd(  # the whole page in one picture, still a phone's width
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": int(height), "deviceScaleFactor": 2, "mobile": True},
    )
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
