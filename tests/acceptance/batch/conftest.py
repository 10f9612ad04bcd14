"""The batch runner's world: an S3 bucket and DynamoDB tables in moto's server, the
gateway built from settings as BatchFunction builds it, and keys to run jobs as."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeroute.batch.runner import BatchRunner
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import BatchConfig, Settings
from edgeroute.store.dynamodb import shared_client
from edgeroute.store.keys import mint_key
from edgeroute.store.s3 import make_s3_client
from edgeroute.store.tables import TableNames, create_tables
from edgeroute.upstreams.http import close_shared_client
from tests.conftest import acceptance_registry
from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.moto_server import AWS_ENV, MotoServer


@pytest.fixture(scope="session")
def registry_file(llama_url: str, fault_upstream: FaultUpstream, workdir: Path) -> Path:
    """The acceptance registry, and ``slow``: an upstream with a fixed 50 ms latency."""
    registry = acceptance_registry(llama_url, fault_upstream.url)
    registry["models"].append(fault_model("slow", fault_upstream.url, "slow"))  # type: ignore[attr-defined]
    path = workdir / "batch-models.yaml"
    path.write_text(yaml.safe_dump(registry))
    return path


@pytest.fixture(scope="module")
def batch_env(moto_server: MotoServer, registry_file: Path) -> Iterator[dict[str, str]]:
    """Set for the whole module, as a Lambda function's environment is for its life."""
    names = TableNames.with_prefix(f"batch-{uuid.uuid4().hex[:6]}")
    env = {
        **AWS_ENV,
        **names.as_env(),
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server.url,
        "AWS_ENDPOINT_URL_S3": moto_server.url,
        "EDGEROUTE_STORE": "dynamodb",
        "EDGEROUTE_REGISTRY": str(registry_file),
    }
    with pytest.MonkeyPatch.context() as mp:
        for var, value in env.items():
            mp.setenv(var, value)
        create_tables(shared_client(moto_server.url, AWS_ENV["AWS_DEFAULT_REGION"]), names)
        yield env


@pytest.fixture(scope="module")
def s3(batch_env: dict[str, str]) -> Any:
    return make_s3_client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"edgeroute-test-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
async def batch_gateway(batch_env: dict[str, str]) -> AsyncIterator[Gateway]:
    yield Gateway.from_settings(Settings.from_env())
    await close_shared_client()  # the upstream pool of this (session-wide) event loop


@pytest.fixture
async def runner(batch_gateway: Gateway, s3: Any) -> AsyncIterator[BatchRunner]:
    yield BatchRunner(batch_gateway, s3, BatchConfig(concurrency=4))


@pytest.fixture
async def key_id(batch_gateway: Gateway) -> str:
    _, record = mint_key(f"batch-{uuid.uuid4().hex[:6]}", tenant="team")
    await batch_gateway.store.put_key(record)
    return record.key_id


@pytest.fixture
async def revoked_key_id(batch_gateway: Gateway) -> str:
    _, record = mint_key(f"revoked-{uuid.uuid4().hex[:6]}", tenant="team")
    await batch_gateway.store.put_key(replace(record, revoked=True))
    return record.key_id
