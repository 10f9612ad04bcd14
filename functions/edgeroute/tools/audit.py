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
from edgeroute.tools.arguments import duration_s


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


async def _audit_show(args: argparse.Namespace, settings: Settings) -> int:
    return await show(args, settings)


async def _audit_list(args: argparse.Namespace, settings: Settings) -> int:
    return await listing(args, settings)


def add_audit_parser(sub: Any) -> None:
    """The ``audit`` command (show, list), under the main parser's ``sub``."""
    audit = sub.add_parser("audit", help="find requests in the audit archive and the ledger")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    show = audit_sub.add_parser("show", help="one request's record and bodies")
    show.add_argument("request_id", help="the x-request-id of the response, e.g. req_...")
    listing = audit_sub.add_parser("list", help="a tenant's requests (bodies kept or not)")
    listing.add_argument("--tenant", required=True)
    for parser in (show, listing):
        parser.add_argument("--json", action="store_true", help="one JSON document per line")
        parser.add_argument(
            "--since",
            type=duration_s,
            default=duration_s("90d") if parser is show else duration_s("1h"),
            metavar="DURATION",
            help="how far back the usage ledger is read (show: 90d, list: 1h)",
        )
    show.add_argument("--tenant", help="the request's tenant (narrows an S3 search)")
    show.set_defaults(func=_audit_show)
    listing.set_defaults(func=_audit_list)
