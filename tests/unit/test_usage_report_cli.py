"""``edgeroute usage --report`` prints the dashboard's figures: its JSON equals what
``GET /dashboard/data`` returns for the same ledger, and its tables show them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from edgeroute.api.app import create_app
from edgeroute.api.dashboard_page import usd
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.tools.cli import main
from tests.support.traffic import known_mix

_WINDOW = ("start", "end")  # the CLI's and the page's "now" differ by a few milliseconds


async def test_the_cli_prints_the_dashboard_s_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edgeroute.db"
    traffic = await known_mix(monkeypatch, SQLiteStore(path))
    transport = httpx.ASGITransport(app=create_app(traffic.gw))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        page = await http.get(
            "/dashboard/data", headers={"authorization": f"Bearer {traffic.admin_secret}"}
        )
    assert page.status_code == 200
    shown = page.json()
    monkeypatch.setenv("EDGEROUTE_STORE", "sqlite")
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(path))
    capsys.readouterr()

    assert await _main("usage", "--report", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    for name in _WINDOW:
        assert abs(printed.pop(name) - shown.pop(name)) < 60
    assert printed == shown
    assert printed["totals"]["requests"] == 12

    assert await _main("usage", "--report") == 0
    tables = capsys.readouterr().out
    for row in shown["by_model"] + shown["by_tenant"] + shown["by_key"]:
        group = row.get("model") or row.get("tenant") or row["key"]
        assert group in tables and usd(row["cost_usd"]) in tables
    for row in shown["by_tier"]:
        assert f"{row['p99_ms']:,.0f}" in tables
    assert "no anomalies" in tables


async def _main(*argv: str) -> int:
    """The CLI runs its own event loop: on a thread, beside this test's."""
    return await asyncio.to_thread(main, list(argv))
