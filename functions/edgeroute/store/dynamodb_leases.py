"""A key's concurrency leases on DynamoDB: one counters item per name (window_start -1)
holds a map holder -> lease end. Taking a slot is one conditional write on the map's
size; expired leases are swept only when the map is full, so the common case stays one
round trip. Methods are blocking: the store runs them on its thread pool."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from edgeroute.store.base import CounterResult

# A key's concurrency leases live in the counters table under this window.
_LEASE_WINDOW = -1
# Conditional writes per acquire before giving up (expired leases swept in between).
_LEASE_TRIES = 3
# A lease map outlives its newest lease by this much before DynamoDB's TTL may drop it.
_LEASE_ITEM_GRACE_S = 3600


def ttl_attribute(expires_at: float) -> dict[str, str]:
    """DynamoDB's TTL attribute: whole epoch seconds, rounded up, which keeps an item at
    least as long as asked."""
    return {"N": str(math.ceil(expires_at))}


class LeaseMaps:
    """Lease maps in the counters table ``table``, through a boto3 DynamoDB ``client``."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def release(self, name: str, holder: str) -> None:
        self._update_if(
            name,
            UpdateExpression="REMOVE #l.#h",
            ConditionExpression="attribute_exists(#l)",  # no map: nothing held
            ExpressionAttributeNames={"#l": "leases", "#h": holder},
        )

    # One counters item per name (window_start -1) holds a map holder -> lease end. Taking
    # a slot is one conditional write on the map's size; expired leases are swept only
    # when the map is full, so the common case stays one round trip.
    @staticmethod
    def _lease_key(name: str) -> dict[str, Any]:
        return {"counter": {"S": name}, "window_start": {"N": str(_LEASE_WINDOW)}}

    def acquire(
        self, name: str, holder: str, limit: int, expires_at: float, now: float
    ) -> CounterResult:
        table, key = self._table, self._lease_key(name)
        failed = self._client.exceptions.ConditionalCheckFailedException
        held = 0
        for _ in range(_LEASE_TRIES):
            try:
                resp = self._client.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET #l.#h = :until, #e = :ttl",
                    ConditionExpression=(
                        "(attribute_exists(#l) AND size(#l) < :limit) OR attribute_exists(#l.#h)"
                    ),
                    ExpressionAttributeNames={"#l": "leases", "#h": holder, "#e": "expires_at"},
                    ExpressionAttributeValues={
                        ":until": {"N": repr(expires_at)},
                        ":ttl": ttl_attribute(expires_at + _LEASE_ITEM_GRACE_S),
                        ":limit": {"N": str(limit)},
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                leases = resp["Attributes"]["leases"]["M"]
                live = sum(1 for v in leases.values() if float(v["N"]) > now)
                return CounterResult(admitted=True, value=max(live, 1))
            except failed as exc:
                old = exc.response.get("Item")
            if old is None or "leases" not in old:
                self._create_lease_map(name)  # first use (or swept by TTL): then retry
                continue
            leases = {h: float(v["N"]) for h, v in old["leases"]["M"].items()}
            expired = [h for h, until in leases.items() if until <= now]
            held = len(leases) - len(expired)
            if not expired:
                return CounterResult(admitted=False, value=held)
            self._sweep_leases(name, {h: leases[h] for h in expired})
        return CounterResult(admitted=False, value=held)

    def _update_if(self, name: str, **request: Any) -> None:
        """One conditional update of ``name``'s lease map; a failed condition means
        another instance got there first, which leaves nothing to do."""
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.update_item(TableName=self._table, Key=self._lease_key(name), **request)

    def _create_lease_map(self, name: str) -> None:
        self._update_if(
            name,
            UpdateExpression="SET #l = :empty",
            ConditionExpression="attribute_not_exists(#l)",
            ExpressionAttributeNames={"#l": "leases"},
            ExpressionAttributeValues={":empty": {"M": {}}},
        )

    def _sweep_leases(self, name: str, expired: dict[str, float]) -> None:
        """Drop leases that ran out, each only if it was not renewed meanwhile."""
        names = {"#l": "leases"}
        values: dict[str, Any] = {}
        removes, checks = [], []
        for i, (holder, until) in enumerate(expired.items()):
            names[f"#h{i}"] = holder
            values[f":u{i}"] = {"N": repr(until)}
            removes.append(f"#l.#h{i}")
            checks.append(f"#l.#h{i} = :u{i}")
        self._update_if(
            name,
            UpdateExpression="REMOVE " + ", ".join(removes),
            ConditionExpression=" AND ".join(checks),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
