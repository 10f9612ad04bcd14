"""The registry and the policy kept in S3 (moto's server, over HTTP as boto3 talks to
S3) are re-read when their ETag changes: one HEAD request per check, a GET only on a
change, and a broken new version refused while the old one keeps serving."""

from __future__ import annotations

import logging

import pytest
import yaml

from edgeroute.config.watch import registry_file
from edgeroute.errors import ConfigError
from edgeroute.pipeline.reload import ConfigFiles, fresh
from edgeroute.settings import Settings
from edgeroute.store.s3 import make_s3_client


def _put(bucket: str, key: str, models: list[str] | str) -> None:
    body = (
        models
        if isinstance(models, str)
        else yaml.safe_dump(
            {
                "models": [
                    {"name": m, "endpoint": "http://one:1/v1", "tier": "small"} for m in models
                ]
            }
        )
    )
    make_s3_client().put_object(Bucket=bucket, Key=key, Body=body.encode())


def _counting_s3_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The S3 operations the config loader makes, by name."""
    import boto3

    made: list[str] = []
    real_client = boto3.client

    def client(*args: object, **kwargs: object) -> object:
        s3 = real_client(*args, **kwargs)
        s3.meta.events.register("before-call.s3", lambda model, **_: made.append(model.name))
        return s3

    monkeypatch.setattr(boto3, "client", client)
    return made


def test_an_s3_registry_is_read_again_when_its_etag_changes(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(bucket, "config/models.yaml", ["alpha"])
    registry = registry_file(f"s3://{bucket}/config/models.yaml")
    assert registry.read().get("alpha") is not None
    made = _counting_s3_calls(monkeypatch)
    assert registry.reread() is None
    assert made == ["HeadObject"]  # unchanged: one HEAD, no GET
    _put(bucket, "config/models.yaml", ["gamma"])
    changed = registry.reread()
    assert changed is not None and changed.get("gamma") is not None
    assert made == ["HeadObject", "HeadObject", "GetObject"]


async def test_a_broken_s3_registry_is_refused_and_the_next_valid_one_served(
    bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"s3://{bucket}/models.yaml"
    _put(bucket, "models.yaml", ["alpha"])
    files = ConfigFiles(Settings(registry=uri, config_reload_s=30))
    assert files.registry.read().get("alpha") is not None
    _put(bucket, "models.yaml", "models: [{name: alpha, tier: small}]\n")  # no endpoint
    with caplog.at_level(logging.ERROR, logger="edgeroute.pipeline.reload"):
        assert await fresh(files.registry) is None
    [refused] = caplog.records
    assert uri in refused.getMessage() and "needs an 'endpoint' URL" in refused.getMessage()
    _put(bucket, "models.yaml", ["alpha", "beta"])
    changed = await fresh(files.registry)
    assert changed is not None and changed.get("beta") is not None


def test_a_missing_s3_object_is_an_error_naming_it(bucket: str) -> None:
    _put(bucket, "models.yaml", ["alpha"])
    registry = registry_file(f"s3://{bucket}/models.yaml")
    registry.read()
    make_s3_client().delete_object(Bucket=bucket, Key="models.yaml")
    with pytest.raises(ConfigError, match=rf"s3://{bucket}/models.yaml: cannot be read from S3"):
        registry.reread()
