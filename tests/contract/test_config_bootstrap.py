"""A stack's first start: its functions point at ``s3://<bucket>/config/*.yaml`` before
anything is uploaded there (moto's S3 server, as boto3 talks to S3). A missing or
invalid object never fails init: the bundled registry and policy serve, with an ERROR
and a ``ConfigFallback`` metric, until a valid object appears and replaces them."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edgeroute.config.loading import bundled
from edgeroute.config.policy import load_policy
from edgeroute.config.registry import load_registry
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings
from edgeroute.store.s3 import make_s3_client
from tests.contract.test_config_s3 import _put

BUNDLED_MODELS = {m.name for m in load_registry(bundled("models.yaml")).models()}


def _settings(bucket: str, tmp_path: Path) -> Settings:
    return Settings(
        registry=f"s3://{bucket}/config/models.yaml",
        policy=f"s3://{bucket}/config/routing.yaml",
        sqlite_path=str(tmp_path / "edgeroute.db"),
        usage_spool="",
        config_reload_s=30,
    )


def _fallbacks(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The ``config`` dimension of each ConfigFallback EMF line printed so far."""
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "ConfigFallback" in x]
    return [line["config"] for line in lines if line["ConfigFallback"] == [1.0]]


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the reload machinery logged (not other loggers: a garbage-collected client
    of an earlier test may log here too)."""
    return [r.getMessage() for r in caplog.records if r.name == "edgeroute.pipeline.reload"]


@pytest.fixture
def emf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # print EMF off Lambda too


def test_an_empty_bucket_starts_on_the_bundled_configuration(
    bucket: str,
    tmp_path: Path,
    emf: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with caplog.at_level(logging.ERROR, logger="edgeroute.pipeline.reload"):
        gw = Gateway.from_settings(_settings(bucket, tmp_path))
    assert {m.name for m in gw.registry.models()} == BUNDLED_MODELS
    assert gw.policy == load_policy(bundled("routing.yaml"))
    said = _said(caplog)
    assert len(said) == 2
    assert f"s3://{bucket}/config/models.yaml cannot serve" in said[0]
    assert bundled("models.yaml") in said[0]
    assert f"s3://{bucket}/config/routing.yaml cannot serve" in said[1]
    assert _fallbacks(capsys) == ["EDGEROUTE_REGISTRY", "EDGEROUTE_POLICY"]


async def test_the_missing_object_is_told_once_and_its_upload_serves(
    bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="edgeroute.pipeline.reload"):
        gw = Gateway.from_settings(_settings(bucket, tmp_path))
        assert len(_said(caplog)) == 2  # each file, at start
        caplog.clear()
        await gw.reload_config()
        await gw.reload_config()
    assert _said(caplog) == []  # not again at every check while nothing changed
    _put(bucket, "config/models.yaml", ["uploaded"])
    await gw.reload_config()
    assert [m.name for m in gw.registry.models()] == ["uploaded"]


def test_an_invalid_object_falls_back_and_is_named(
    bucket: str,
    tmp_path: Path,
    emf: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _put(bucket, "config/models.yaml", "models: [{name: alpha, tier: small}]\n")  # no endpoint
    make_s3_client().put_object(
        Bucket=bucket, Key="config/routing.yaml", Body=b"no_such_field: 1\n"
    )
    with caplog.at_level(logging.ERROR, logger="edgeroute.pipeline.reload"):
        gw = Gateway.from_settings(_settings(bucket, tmp_path))
    assert {m.name for m in gw.registry.models()} == BUNDLED_MODELS
    assert gw.policy == load_policy(bundled("routing.yaml"))
    said = " ".join(_said(caplog))
    assert "needs an 'endpoint' URL" in said and "no_such_field" in said
    assert _fallbacks(capsys) == ["EDGEROUTE_REGISTRY", "EDGEROUTE_POLICY"]


def test_a_valid_object_wins_over_the_bundled_default(
    bucket: str,
    tmp_path: Path,
    emf: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _put(bucket, "config/models.yaml", ["alpha"])
    make_s3_client().put_object(
        Bucket=bucket, Key="config/routing.yaml", Body=b"health_ttl_s: 42\n"
    )
    with caplog.at_level(logging.WARNING, logger="edgeroute.pipeline.reload"):
        gw = Gateway.from_settings(_settings(bucket, tmp_path))
    assert [m.name for m in gw.registry.models()] == ["alpha"]
    assert gw.policy.health_ttl_s == 42
    assert _said(caplog) == [] and _fallbacks(capsys) == []


def test_a_local_file_that_is_missing_still_stops_the_start(tmp_path: Path) -> None:
    from edgeroute.errors import ConfigError

    missing = str(tmp_path / "models.yaml")
    settings = Settings(registry=missing, sqlite_path=str(tmp_path / "e.db"), usage_spool="")
    with pytest.raises(ConfigError, match="registry file not found"):
        Gateway.from_settings(settings)


@pytest.fixture
def probe_module(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """handlers.health_probe imported as Lambda imports it, for a stack whose bucket is
    still empty."""
    monkeypatch.setenv("EDGEROUTE_REGISTRY", f"s3://{bucket}/config/models.yaml")
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))
    monkeypatch.setenv("EDGEROUTE_USAGE_SPOOL", "")
    sys.modules.pop("edgeroute.handlers.health_probe", None)
    module = importlib.import_module("edgeroute.handlers.health_probe")
    yield module
    sys.modules.pop("edgeroute.handlers.health_probe", None)


def test_the_health_probe_runs_on_the_bundled_registry_without_an_error_each_run(
    probe_module: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    results: list[dict[str, Any]] = []
    caplog.clear()  # the import's ERROR: the registry falls back once, at init
    with caplog.at_level(logging.ERROR, logger="edgeroute.pipeline.reload"):
        for _ in range(3):  # three scheduled runs
            results.append(probe_module.handler({}, None))
    assert all(r["endpoints"] >= 1 for r in results)  # the bundled registry's upstreams
    assert _said(caplog) == []
