"""Backend-specific facts: SQLite persistence, template-declared tables (the backend
choice and table names are settings: tests/unit/test_settings.py)."""

from __future__ import annotations

import time
from pathlib import Path

from edgeroute.settings import Settings
from edgeroute.store import open_store
from edgeroute.store.tables import TableNames, create_table_request, load_template, table_properties
from tests.contract.test_store_contract import T0, _key, _usage


async def test_sqlite_data_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "nested" / "edgeroute.db")
    exp = time.time() + 600
    store = open_store(Settings(store="sqlite", sqlite_path=path))
    await store.put_key(_key("k1", T0))
    await store.record_usage(_usage("r1", "acme", T0))
    await store.add_to_counter("rpm:k1", 0, 7, 10, exp)
    await store.cache_put("c", b"cached" * 5000, exp)
    await store.put_job("j1", {"status": "queued"})
    await store.close()

    reopened = open_store(Settings(store="sqlite", sqlite_path=path))
    try:
        assert await reopened.get_key("k1") == _key("k1", T0)
        assert [r.request_id for r in await reopened.query_usage(T0, T0 + 1)] == ["r1"]
        assert await reopened.get_counter("rpm:k1", 0) == 7
        assert not (await reopened.add_to_counter("rpm:k1", 0, 4, 10, exp)).admitted
        assert await reopened.cache_get("c") == b"cached" * 5000
        assert await reopened.get_job("j1") == {"status": "queued"}
    finally:
        await reopened.close()


def test_template_declares_every_table_once() -> None:
    props = table_properties(load_template())
    assert sorted(props) == sorted(TableNames.logical_id(r) for r in TableNames.roles())
    for logical_id, table in props.items():
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["SSESpecification"] == {"SSEEnabled": True}
        request = create_table_request("t", table)
        defined = {a["AttributeName"] for a in request["AttributeDefinitions"]}
        used = {k["AttributeName"] for k in request["KeySchema"]}
        for gsi in request.get("GlobalSecondaryIndexes", []):
            used |= {k["AttributeName"] for k in gsi["KeySchema"]}
        assert defined == used, logical_id
    # Items that expire carry a TTL; keys and usage are kept and recoverable.
    for role in ("counters", "cache", "health", "jobs"):
        ttl = props[TableNames.logical_id(role)]["TimeToLiveSpecification"]
        assert ttl == {"AttributeName": "expires_at", "Enabled": True}
    for role in ("keys", "usage"):
        pitr = props[TableNames.logical_id(role)]["PointInTimeRecoverySpecification"]
        assert pitr == {"PointInTimeRecoveryEnabled": True}
    # Short tags load as their long forms.
    assert props["KeysTable"]["Tags"][0]["Value"] == {"Ref": "Stage"}
