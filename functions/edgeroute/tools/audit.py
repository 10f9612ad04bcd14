"""`edgeroute audit show|list`: one request's audit record and bodies from the archive
(the local folder or the S3 bucket the settings name), or its usage ledger lines when
its bodies were not kept; a tenant's recent requests."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from edgeroute.settings import Settings
from edgeroute.store import UsageRecord, open_store
from edgeroute.store.archive import open_archive


async def _ledger(settings: Settings, since_s: float, tenant: str | None) -> list[UsageRecord]:
    store = open_store(settings)
    try:
        now = time.time()
        return await store.query_usage(now - since_s, now + 60, tenant)
    finally:
        await store.close()


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


async def show(args: argparse.Namespace, settings: Settings) -> int:
    archive = open_archive(settings)
    document: dict[str, Any] | None = None
    if archive is not None:
        document = await archive.find(args.request_id, args.tenant)
    if document is None:  # bodies not kept: what the ledger knows
        rows = [
            asdict(r)
            for r in await _ledger(settings, args.since, args.tenant)
            if r.request_id.partition("#")[0] == args.request_id
        ]
        document = {"request_id": args.request_id, "bodies": None, "ledger": rows} if rows else None
    if document is None:
        where = archive.where if archive else "no archive configured"
        print(
            f"error: no request '{args.request_id}' in the audit archive ({where}) or in the "
            f"usage ledger of the last {args.since / 86_400:g} days (widen it with --since)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(document, indent=None if args.json else 2))
    return 0


async def listing(args: argparse.Namespace, settings: Settings) -> int:
    """The tenant's requests in the window, from the ledger, marking those whose
    bodies the archive keeps."""
    archive = open_archive(settings)
    start = time.time() - args.since
    kept = set()
    if archive is not None:
        kept = {d["record"]["request_id"] for d in await archive.since(args.tenant, start)}
    rows = [r for r in await _ledger(settings, args.since, args.tenant) if not r.failed_attempt]
    for r in rows:
        line = {
            "created_at": _when(r.created_at),
            "request_id": r.request_id,
            "key_id": r.key_id,
            "endpoint": r.endpoint,
            "model": r.model,
            "status": r.status,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "cost_usd_micros": r.cost_usd_micros,
            "bodies_kept": r.request_id in kept,
        }
        print(json.dumps(line) if args.json else "  ".join(str(v) for v in line.values()))
    return 0
