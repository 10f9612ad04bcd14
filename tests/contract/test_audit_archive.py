"""The audit archive's contract, on a local folder and on S3 (moto's server, over HTTP
as boto3 talks to S3): a request's document is found by id, with or without its
tenant, under ``audit/<tenant>/<yyyy>/<mm>/<dd>/<request id>.json``; a tenant's are
listed by time; tenants never see each other's."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from edgeroute.settings import AuditConfig, Settings
from edgeroute.store.archive import Archive, FolderArchive, S3Archive, open_archive
from edgeroute.store.s3 import make_s3_client
from edgeroute.tools.cli import main
from tests.support.moto_server import AWS_ENV, MotoServer


@pytest.fixture(params=["folder", "s3"])
def archive(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Archive:
    if request.param == "folder":
        return FolderArchive(tmp_path / "audit", retention_days=30)
    server: MotoServer = request.getfixturevalue("moto_server")
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL_S3": server.url}.items():
        monkeypatch.setenv(name, value)
    bucket = f"audit-{uuid.uuid4().hex[:8]}"
    make_s3_client().create_bucket(Bucket=bucket)
    # Opened as a Lambda function opens it: from the settings the template sets.
    opened = open_archive(Settings(store="sqlite", audit=AuditConfig(bucket=bucket)))
    assert isinstance(opened, S3Archive)
    return opened


def _document(request_id: str, tenant: str) -> dict[str, Any]:
    return {
        "record": {"request_id": request_id, "tenant": tenant, "status": 200},
        "request": {"messages": [{"role": "user", "content": "héllo ✓"}]},
        "answer": {"choices": [{"message": {"content": "hi"}}]},
    }


async def test_a_document_is_found_by_request_id(archive: Archive) -> None:
    now = time.time()
    await archive.put("acme", "req_a", now, _document("req_a", "acme"))
    await archive.put("beta", "req_b", now, _document("req_b", "beta"))

    assert await archive.find("req_a") == _document("req_a", "acme")
    assert await archive.find("req_a", tenant="acme") == _document("req_a", "acme")
    assert await archive.find("req_a", tenant="beta") is None  # not another tenant's
    assert await archive.find("req_missing") is None


async def test_a_tenants_documents_are_listed_by_time(archive: Archive) -> None:
    start = time.time() - 5
    for n in range(3):
        await archive.put("acme", f"req_{n}", time.time(), _document(f"req_{n}", "acme"))
    await archive.put("beta", "req_x", time.time(), _document("req_x", "beta"))

    listed = await archive.since("acme", start)
    assert [d["record"]["request_id"] for d in listed] == ["req_0", "req_1", "req_2"]
    assert await archive.since("acme", time.time() + 60) == []


async def test_the_s3_layout_is_tenant_and_day(moto_server: MotoServer, monkeypatch: Any) -> None:
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL_S3": moto_server.url}.items():
        monkeypatch.setenv(name, value)
    bucket = f"audit-{uuid.uuid4().hex[:8]}"
    client = make_s3_client()
    client.create_bucket(Bucket=bucket)
    when = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    await S3Archive(bucket).put("team/a", "req_1", when, _document("req_1", "team/a"))

    [item] = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert item["Key"] == "audit/team%2Fa/2026/01/01/req_1.json"
    head = client.head_object(Bucket=bucket, Key=item["Key"])
    assert head["ContentType"] == "application/json"
    assert head["ServerSideEncryption"] == "AES256"
    assert S3Archive(bucket).sweep() == 0  # the bucket's lifecycle rule expires audit/


async def test_audit_show_reads_the_bucket_the_settings_name(
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL_S3": moto_server.url}.items():
        monkeypatch.setenv(name, value)
    bucket = f"audit-{uuid.uuid4().hex[:8]}"
    make_s3_client().create_bucket(Bucket=bucket)
    await S3Archive(bucket).put("acme", "req_s3", time.time(), _document("req_s3", "acme"))
    monkeypatch.setenv("EDGEROUTE_AUDIT_BUCKET", bucket)
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))

    code = await asyncio.to_thread(main, ["audit", "show", "req_s3", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out) == _document("req_s3", "acme")
