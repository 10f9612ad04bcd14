"""Live registry and policy: a changed file serves after the next due check, a broken
one is refused with an ERROR while the old one keeps serving, the check costs nothing
until it is due, and what is derived from the registry (cached health views) follows."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from edgeroute.config import watch
from edgeroute.config.watch import policy_file, registry_file
from edgeroute.errors import ConfigError
from edgeroute.health.circuits import circuit_key
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.reload import fresh
from edgeroute.settings import Settings
from edgeroute.store.keys import mint_key
from tests.support.inprocess import Client
from tests.support.scripted_upstream import ScriptedUpstream

HANG_GUARD_S = 10.0


def _model(name: str, host: str = "one") -> dict[str, Any]:
    return {"name": name, "endpoint": f"http://{host}:1/v1", "tier": "small"}


def _write(path: Path, data: Any, *, later_s: float = 0.0) -> None:
    """Write ``data`` as YAML; ``later_s`` moves its mtime on (same-size rewrites)."""
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    if later_s:
        stamp = time.time() + later_s
        os.utime(path, (stamp, stamp))


def test_a_watched_file_is_read_again_only_when_it_changed(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    _write(path, {"models": [_model("alpha")]})
    registry = registry_file(str(path))
    assert registry.read().get("alpha") is not None
    assert registry.reread() is None  # unchanged
    _write(path, {"models": [_model("gamma")]}, later_s=5)  # same size: the mtime says so
    changed = registry.reread()
    assert changed is not None and changed.get("gamma") is not None
    assert registry.reread() is None


def test_a_refused_version_is_not_parsed_again_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    _write(path, "max_attempts: 2\n")
    policy = policy_file(str(path))
    assert policy.read().max_attempts == 2
    _write(path, "max_attempts: 20\n")
    with pytest.raises(ConfigError, match=r"routing\.yaml: max_attempts: .*less than or equal"):
        policy.reread()
    assert policy.reread() is None  # the same broken version: refused once
    _write(path, "max_attempts: 4\n")
    changed = policy.reread()
    assert changed is not None and changed.max_attempts == 4


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    _write(path, {"models": [_model("alpha")]})
    registry = registry_file(str(path))
    registry.read()
    path.unlink()
    with pytest.raises(ConfigError, match=r"models\.yaml: registry file not found"):
        registry.reread()


def _gateway(tmp_path: Path, models: list[dict[str, Any]], reload_s: float) -> Gateway:
    registry, policy = tmp_path / "models.yaml", tmp_path / "routing.yaml"
    _write(registry, {"models": models})
    _write(policy, {"health_ttl_s": 60})  # cached health views would outlive the test
    settings = Settings(
        registry=str(registry),
        policy=str(policy),
        sqlite_path=str(tmp_path / "state" / "edgeroute.db"),
        usage_spool="",
        classify="auto",
        config_reload_s=reload_s,
    )
    return Gateway.from_settings(settings)


async def _models(client: Client) -> list[str]:
    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        answer = await http.get("/v1/models", headers={"authorization": f"Bearer {client.secret}"})
    assert answer.status_code == 200, answer.text
    return sorted(m["id"] for m in answer.json()["data"])


async def _eventually(client: Client, done: Callable[[list[str]], bool]) -> list[str]:
    """Ask for the model list until ``done`` holds for it (each request may start a check)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        models = await _models(client)
        if done(models) or time.monotonic() > deadline:
            return models
        await asyncio.sleep(0.02)


async def _client(gw: Gateway) -> Client:
    secret, key = mint_key("unit", tenant="acme")
    await gw.store.put_key(key)
    return Client(gw, secret)


async def test_a_rewritten_registry_serves_after_the_next_check(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    gw = _gateway(tmp_path, [_model("alpha")], reload_s=0.05)
    client = await _client(gw)
    assert await _models(client) == ["alpha"]
    old = gw.registry
    _write(tmp_path / "models.yaml", {"models": [_model("gamma")]}, later_s=5)
    assert await _eventually(client, lambda m: m == ["gamma"]) == ["gamma"]
    assert gw.registry is not old and old.get("alpha") is not None  # replaced, not changed
    answer = await client.chat("gamma")
    assert answer.status_code == 200, answer.text
    assert (await client.chat("alpha")).status_code == 404


async def test_a_broken_rewrite_is_refused_and_logged_and_the_old_registry_serves(
    tmp_path: Path, upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    gw = _gateway(tmp_path, [_model("alpha")], reload_s=0.02)
    client = await _client(gw)
    path = tmp_path / "models.yaml"
    broken = {"models": [{**_model("alpha"), "tier": "huge"}, _model("beta")]}
    with caplog.at_level(logging.ERROR, logger="edgeroute.pipeline.reload"):
        _write(path, broken)
        deadline = time.monotonic() + HANG_GUARD_S
        while not caplog.records and time.monotonic() < deadline:
            assert await _models(client) == ["alpha"]
            await asyncio.sleep(0.02)
        for _ in range(5):  # more due checks: the same version is not refused again
            await asyncio.sleep(0.03)
            assert await _models(client) == ["alpha"]
    [refused] = caplog.records
    message = refused.getMessage()
    assert refused.levelname == "ERROR"
    assert str(path) in message and "models.alpha.tier" in message and "refused" in message
    assert (await client.chat("alpha")).status_code == 200
    _write(path, {"models": [_model("alpha"), _model("beta")]})
    assert await _eventually(client, lambda m: "beta" in m) == ["alpha", "beta"]


async def test_until_a_check_is_due_nothing_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = _gateway(tmp_path, [_model("alpha")], reload_s=30)
    looked: list[str] = []

    def version_of(location: str, what: str, variable: str) -> str:
        looked.append(location)
        return "unchanged"

    monkeypatch.setattr(watch, "version_of", version_of)
    for _ in range(10_000):
        gw.check_config()
    assert looked == []


async def test_a_new_registry_reads_circuits_again(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    # The tenant's health view is cached (60 s here); a model that arrives with a new
    # registry must still be seen with its circuit open.
    gw = _gateway(tmp_path, [_model("alpha")], reload_s=0.02)
    client = await _client(gw)
    assert (await client.chat("alpha")).status_code == 200  # caches acme's view
    _write(tmp_path / "models.yaml", {"models": [_model("alpha"), _model("beta", "two")]})
    assert "beta" in await _eventually(client, lambda m: "beta" in m)
    beta = gw.registry.get("beta")
    assert beta is not None
    until = time.time() + 60
    await gw.store.put_health(circuit_key(beta), {"circuit_open_until": until}, until)
    answer = await client.chat("beta")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "circuit_open"
    assert [c.model for c in upstream.calls] == ["alpha"]


async def test_a_rewritten_policy_serves_after_the_next_check(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, [_model("alpha")], reload_s=0.02)
    client = await _client(gw)
    assert gw.policy.max_attempts == 3
    _write(tmp_path / "routing.yaml", {"health_ttl_s": 60, "max_attempts": 5})
    deadline = time.monotonic() + HANG_GUARD_S
    while gw.policy.max_attempts != 5 and time.monotonic() < deadline:
        await _models(client)
        await asyncio.sleep(0.02)
    assert gw.policy.max_attempts == 5


async def test_a_model_sent_to_another_upstream_model_does_not_answer_from_the_cache(
    tmp_path: Path, upstream: ScriptedUpstream
) -> None:
    gw = _gateway(tmp_path, [_model("alpha")], reload_s=0.02)
    client = await _client(gw)
    first = await client.chat("alpha", temperature=0)
    assert first.headers["x-edgeroute-cache"] == "miss"
    assert (await client.chat("alpha", temperature=0)).headers["x-edgeroute-cache"] == "hit"
    renamed = {**_model("alpha"), "upstream_model": "alpha-v2"}
    _write(tmp_path / "models.yaml", {"models": [renamed]})
    deadline = time.monotonic() + HANG_GUARD_S
    while (model := gw.registry.get("alpha")) is None or model.wire_name != "alpha-v2":
        assert time.monotonic() < deadline, "hang guard: the registry was not reloaded"
        await _models(client)
        await asyncio.sleep(0.02)
    again = await client.chat("alpha", temperature=0)
    assert again.headers["x-edgeroute-cache"] == "miss"
    assert [c.payload["model"] for c in upstream.calls] == ["alpha", "alpha-v2"]


async def test_a_refused_file_is_counted_in_a_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "routing.yaml"
    _write(path, "max_attempts: 2\n")
    policy = policy_file(str(path))
    policy.read()
    _write(path, "max_attempts: [\n")  # not YAML
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # print EMF off Lambda too
    assert await fresh(policy) is None
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "ConfigRefused" in x]
    assert line["ConfigRefused"] == [1.0] and line["config"] == "EDGEROUTE_POLICY"
