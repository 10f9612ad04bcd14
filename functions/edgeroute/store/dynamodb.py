"""The production store: DynamoDB through boto3, run off the event loop.

boto3 is synchronous, so every call goes to a small thread pool shared by the
process, as is the one boto3 client (clients are thread-safe and keep their
connection pool warm across Lambda invocations). The table layout is declared in
template.yaml; see tables.py for the names and for creating local tables.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edgeroute.settings import TableNames
from edgeroute.store.base import (
    ApiKey,
    CounterResult,
    UsageRecord,
    decode_cache_value,
    encode_cache_value,
    key_from_json,
    key_to_json,
    merge_health,
    usage_from_json,
    usage_to_json,
)
from edgeroute.store.dynamodb_leases import LeaseMaps, ttl_attribute
from edgeroute.store.job_listing import ACTIVE, DynamoDBJobListing, index_attributes
from edgeroute.store.responses import DynamoResponses
from edgeroute.store.usage import GroupBy, UsageTotals, fold, ordered

# Threads (and HTTP connections) for boto3 calls: enough for a burst of concurrent
# quota, cache and usage calls from one process without queueing.
WORKERS = 32
# The usage GSI spreads all tenants over this many partitions (each takes ~1000
# writes/s); an admin query fans out over all of them. Changing it needs a backfill.
USAGE_SHARDS = 8
_USAGE_INDEX = "by_shard"
# Sort keys hold created_at zero-padded so string order is time order.
_MAX_TIME = 1e13


_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dynamodb")
        return _pool


@functools.cache
def shared_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """One boto3 DynamoDB client per (endpoint, region) for the whole process."""
    import boto3
    from botocore.config import Config

    config = Config(
        max_pool_connections=WORKERS,
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=2,
        read_timeout=5,
        tcp_keepalive=True,
    )
    # A fresh Session: the default one is not safe to create clients from concurrently.
    session = boto3.session.Session()
    return session.client("dynamodb", endpoint_url=endpoint_url, region_name=region, config=config)


def _endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")


def _expired(item: dict[str, Any], now: float | None = None) -> bool:
    """DynamoDB deletes expired items up to days late, so reads check expiry themselves."""
    exp = item.get("expires_at")
    return exp is not None and float(exp["N"]) <= (time.time() if now is None else now)


def _health_row(item: dict[str, Any]) -> tuple[str, str, Any]:
    kind = item["kind"]["S"]
    value = json.loads(item["body"]["S"]) if kind == "health" else float(item["until"]["N"])
    return item["endpoint"]["S"], kind, value


def _sk_time(t: float) -> str:
    return f"{min(max(t, 0.0), _MAX_TIME):020.6f}"


def _job_item(job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Status and lease live beside the JSON body so a claim can be conditional on them."""
    return {
        "job_id": {"S": job_id},
        "body": {"S": json.dumps(data)},
        "job_status": {"S": str(data.get("status", ""))},
        "lease_until": {"N": repr(float(data.get("lease_until", 0)))},
        **index_attributes(data),  # a listed row (store/job_listing.py)
    }


class DynamoDBStore(DynamoDBJobListing):
    def __init__(
        self,
        tables: TableNames,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.tables = tables
        self._client = client or shared_client(endpoint_url or _endpoint_from_env(), region)
        self._leases = LeaseMaps(self._client, tables.counters)
        self.responses = DynamoResponses(self._client, tables.jobs, self._call)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))

    # -- keys ------------------------------------------------------------------
    async def put_key(self, key: ApiKey) -> None:
        item = {
            "key_id": {"S": key.key_id},
            "tenant": {"S": key.tenant},
            "body": {"S": key_to_json(key)},
        }
        await self._call(self._client.put_item, TableName=self.tables.keys, Item=item)

    async def get_key(self, key_id: str) -> ApiKey | None:
        resp = await self._call(
            self._client.get_item, TableName=self.tables.keys, Key={"key_id": {"S": key_id}}
        )
        item = resp.get("Item")
        return key_from_json(item["body"]["S"]) if item else None

    async def list_keys(self) -> list[ApiKey]:
        # A Scan is fine here: listing keys is an admin action over a small table.
        items = await self._call(self._paginate, "scan", TableName=self.tables.keys)
        return sorted((key_from_json(i["body"]["S"]) for i in items), key=lambda k: k.created_at)

    def _paginate(self, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self._client.get_paginator(operation).paginate(**kwargs):
            items.extend(page.get("Items", []))
        return items

    # -- usage -----------------------------------------------------------------
    async def record_usage(self, record: UsageRecord) -> None:
        shard = zlib.crc32(record.request_id.encode()) % USAGE_SHARDS
        item = {
            "tenant": {"S": record.tenant},
            "sk": {"S": f"{_sk_time(record.created_at)}#{record.request_id}"},
            "shard": {"S": str(shard)},
            "created_at": {"N": repr(record.created_at)},
            "body": {"S": usage_to_json(record)},
        }
        await self._call(self._client.put_item, TableName=self.tables.usage, Item=item)

    def _usage_queries(self, start: float, end: float, tenant: str | None) -> list[dict[str, Any]]:
        """The Query requests covering a window: the tenant's partition, or every shard of
        the GSI. BETWEEN is inclusive and works on the rounded time; callers apply the
        exact bounds to created_at."""
        values = {":a": {"S": _sk_time(start)}, ":b": {"S": _sk_time(end)}}
        common = {
            "TableName": self.tables.usage,
            "KeyConditionExpression": "#p = :p AND #sk BETWEEN :a AND :b",
        }
        if tenant is not None:
            return [
                {
                    **common,
                    "ExpressionAttributeNames": {"#p": "tenant", "#sk": "sk"},
                    "ExpressionAttributeValues": {**values, ":p": {"S": tenant}},
                }
            ]
        return [
            {
                **common,
                "IndexName": _USAGE_INDEX,
                "ExpressionAttributeNames": {"#p": "shard", "#sk": "sk"},
                "ExpressionAttributeValues": {**values, ":p": {"S": str(shard)}},
            }
            for shard in range(USAGE_SHARDS)
        ]

    async def query_usage(
        self, start: float, end: float, tenant: str | None = None
    ) -> list[UsageRecord]:
        if end <= start:
            return []
        pages = await asyncio.gather(
            *(
                self._call(self._paginate, "query", **q)
                for q in self._usage_queries(start, end, tenant)
            )
        )
        records = [
            usage_from_json(item["body"]["S"])
            for items in pages
            for item in items
            if start <= float(item["created_at"]["N"]) < end
        ]
        return sorted(records, key=lambda r: (r.created_at, r.request_id))

    async def summarize_usage(
        self, start: float, end: float, tenant: str | None, group_by: GroupBy
    ) -> list[UsageTotals]:
        # DynamoDB has no GROUP BY: each query folds its pages into totals as they arrive
        # (memory: one page and the groups), and the per-query totals are merged.
        if end <= start:
            return []
        parts = await asyncio.gather(
            *(
                self._call(self._fold_usage, start, end, group_by, q)
                for q in self._usage_queries(start, end, tenant)
            )
        )
        merged: dict[str, UsageTotals] = {}
        for part in parts:
            for name, totals in part.items():
                if name in merged:
                    merged[name].merge(totals)
                else:
                    merged[name] = totals
        return ordered(merged.values())

    def _fold_usage(
        self, start: float, end: float, group_by: GroupBy, query: dict[str, Any]
    ) -> dict[str, UsageTotals]:
        totals: dict[str, UsageTotals] = {}
        names = {**query["ExpressionAttributeNames"], "#ca": "created_at", "#bd": "body"}
        pages = self._client.get_paginator("query").paginate(
            **{**query, "ExpressionAttributeNames": names}, ProjectionExpression="#ca, #bd"
        )
        for page in pages:
            records = (
                usage_from_json(item["body"]["S"])
                for item in page.get("Items", [])
                if start <= float(item["created_at"]["N"]) < end
            )
            fold(records, group_by, into=totals)
        return totals

    # -- counters --------------------------------------------------------------
    async def add_to_counter(
        self, name: str, window_start: int, amount: int, limit: int | None, expires_at: float
    ) -> CounterResult:
        key = {"counter": {"S": name}, "window_start": {"N": str(window_start)}}
        request: dict[str, Any] = {
            "TableName": self.tables.counters,
            "Key": key,
            "UpdateExpression": "ADD #v :n SET #e = :e",
            "ExpressionAttributeNames": {"#v": "v", "#e": "expires_at"},
            "ExpressionAttributeValues": {
                ":n": {"N": str(amount)},
                ":e": ttl_attribute(expires_at),
            },
            "ReturnValues": "UPDATED_NEW",
        }
        if amount > 0 and limit is not None:
            if amount > limit:
                # Would pass attribute_not_exists on a fresh window; refuse outright.
                current = await self.get_counter(name, window_start)
                return CounterResult(admitted=False, value=current)
            request["ConditionExpression"] = "attribute_not_exists(#v) OR #v <= :max"
            request["ExpressionAttributeValues"][":max"] = {"N": str(limit - amount)}
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            resp = await self._call(self._client.update_item, **request)
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            old = exc.response.get("Item")
            if old and "v" in old:
                return CounterResult(admitted=False, value=int(old["v"]["N"]))
            return CounterResult(admitted=False, value=await self.get_counter(name, window_start))
        return CounterResult(admitted=True, value=int(resp["Attributes"]["v"]["N"]))

    async def get_counter(self, name: str, window_start: int) -> int:
        resp = await self._call(
            self._client.get_item,
            TableName=self.tables.counters,
            Key={"counter": {"S": name}, "window_start": {"N": str(window_start)}},
            ConsistentRead=True,
        )
        item = resp.get("Item")
        return int(item["v"]["N"]) if item and "v" in item else 0

    # -- leases ----------------------------------------------------------------
    async def acquire_lease(
        self, name: str, holder: str, limit: int, expires_at: float, now: float
    ) -> CounterResult:
        result: CounterResult = await self._call(
            self._leases.acquire, name, holder, limit, expires_at, now
        )
        return result

    async def release_lease(self, name: str, holder: str) -> None:
        await self._call(self._leases.release, name, holder)

    # -- cache -----------------------------------------------------------------
    async def cache_get(self, key: str) -> bytes | None:
        resp = await self._call(
            self._client.get_item, TableName=self.tables.cache, Key={"cache_key": {"S": key}}
        )
        item = resp.get("Item")
        if not item or _expired(item):
            return None
        return decode_cache_value(bytes(item["v"]["B"]), bool(item["z"]["BOOL"]))

    async def cache_put(self, key: str, value: bytes, expires_at: float) -> bool:
        encoded = encode_cache_value(key, value)
        if encoded is None:
            return False
        stored, compressed = encoded
        item = {
            "cache_key": {"S": key},
            "v": {"B": stored},
            "z": {"BOOL": compressed},
            "expires_at": ttl_attribute(expires_at),
        }
        await self._call(self._client.put_item, TableName=self.tables.cache, Item=item)
        return True

    # -- health ----------------------------------------------------------------
    async def put_health(self, endpoint: str, data: dict[str, Any], expires_at: float) -> None:
        item = {
            "endpoint": {"S": endpoint},
            "kind": {"S": "health"},
            "body": {"S": json.dumps(data)},
            "expires_at": ttl_attribute(expires_at),
        }
        await self._call(self._client.put_item, TableName=self.tables.health, Item=item)

    async def open_circuit(self, endpoint: str, until: float) -> None:
        item = {
            "endpoint": {"S": endpoint},
            "kind": {"S": "circuit"},
            "until": {"N": repr(until)},
            "expires_at": ttl_attribute(until),
        }
        await self._call(self._client.put_item, TableName=self.tables.health, Item=item)

    async def get_health(self, endpoints: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = list(dict.fromkeys(endpoints))
        keys = [
            {"endpoint": {"S": e}, "kind": {"S": kind}}
            for e in wanted
            for kind in ("health", "circuit")
        ]
        # BatchGetItem takes 100 keys a call: 50 endpoints.
        chunks = [keys[i : i + 100] for i in range(0, len(keys), 100)]
        results = await asyncio.gather(*(self._call(self._batch_get, keys=c) for c in chunks))
        now = time.time()
        rows = [_health_row(item) for r in results for item in r if not _expired(item, now)]
        # The TTL attribute is rounded up to whole seconds; the circuit's own time is exact.
        live = [row for row in rows if row[1] == "health" or row[2] > now]
        return {e: v for e, v in merge_health(live).items() if v}

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        table = self.tables.health
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {table: {"Keys": keys}}
        for attempt in range(8):
            resp = self._client.batch_get_item(RequestItems=request)
            items.extend(resp.get("Responses", {}).get(table, []))
            request = resp.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(0.02 * 2**attempt)  # throttled: back off before the remainder
        raise RuntimeError("DynamoDB left health keys unprocessed after retries")

    # -- jobs ------------------------------------------------------------------
    async def put_job(
        self, job_id: str, data: dict[str, Any], expires_at: float | None = None
    ) -> None:
        item = _job_item(job_id, data)
        if expires_at is not None:
            item["expires_at"] = ttl_attribute(expires_at)
        await self._call(self._client.put_item, TableName=self.tables.jobs, Item=item)

    async def claim_job(self, job_id: str, data: dict[str, Any], now: float) -> bool:
        active = {f":s{i}": {"S": status} for i, status in enumerate(ACTIVE)}
        try:
            await self._call(
                self._client.put_item,
                TableName=self.tables.jobs,
                Item=_job_item(job_id, data),
                # New, or abandoned by an invocation whose lease ran out; never a finished one.
                ConditionExpression="attribute_not_exists(job_id) OR "
                f"(job_status IN ({', '.join(active)}) AND lease_until <= :now)",
                ExpressionAttributeValues={**active, ":now": {"N": repr(float(now))}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        resp = await self._call(
            self._client.get_item,
            TableName=self.tables.jobs,
            Key={"job_id": {"S": job_id}},
            ConsistentRead=True,  # job state moves on between calls; read the latest
        )
        item = resp.get("Item")
        if not item or _expired(item):
            return None
        return dict(json.loads(item["body"]["S"]))

    async def close(self) -> None:
        # The client and thread pool are shared by the process and outlive any one store.
        return None
