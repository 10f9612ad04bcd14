"""Fixtures for the store contract: every test runs on SQLite and on DynamoDB (moto server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edgeroute.settings import Settings
from edgeroute.store import Store, open_store
from edgeroute.store.dynamodb import shared_client
from edgeroute.store.s3 import make_s3_client
from edgeroute.store.tables import TableNames, create_tables
from tests.support.moto_server import AWS_ENV, MotoServer

StoreFactory = Callable[[], Store]


def _dynamodb_factory(server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Store]:
    server.reset()
    # The store is opened exactly as a Lambda function opens it: from the environment.
    names = TableNames.with_prefix(f"t-{uuid.uuid4().hex[:8]}")
    for var, value in {**AWS_ENV, **names.as_env(), "EDGEROUTE_STORE": "dynamodb"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)
    create_tables(shared_client(server.url, AWS_ENV["AWS_DEFAULT_REGION"]), names)
    return lambda: open_store(Settings.from_env())


@pytest.fixture(params=["sqlite", "dynamodb"])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StoreFactory]:
    """Opens more stores on the same data: another connection to the same SQLite file,
    or another client for the same DynamoDB tables (as separate processes would)."""
    if request.param == "sqlite":
        path = str(tmp_path / "edgeroute.db")

        def opener() -> Store:
            return open_store(Settings(store="sqlite", sqlite_path=path))
    else:
        opener = _dynamodb_factory(request.getfixturevalue("moto_server"), monkeypatch)

    opened: list[Store] = []

    def factory() -> Store:
        store = opener()
        opened.append(store)
        return store

    try:
        yield factory
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    return store_factory()


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty S3 bucket in moto's server, which boto3 clients made from now on reach."""
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL_S3": moto_server.url}.items():
        monkeypatch.setenv(name, value)
    name = f"config-{uuid.uuid4().hex[:8]}"
    make_s3_client().create_bucket(Bucket=name)
    return name
