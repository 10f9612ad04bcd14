"""The ``edgeroute`` command: serve the gateway locally and manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from typing import Any

from edgeroute.config import Settings
from edgeroute.errors import ConfigError
from edgeroute.keys import hash_key, key_id_for, mint_key
from edgeroute.store import ApiKey, Store, open_store


def _store(settings: Settings) -> Store:
    return open_store(settings.store, settings.sqlite_path)


def _key_summary(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "tenant": key.tenant,
        "models": list(key.models) or "all",
        "admin": key.admin,
        "revoked": key.revoked,
    }


async def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    models = tuple(m for item in args.models or () for m in item.split(",") if m)
    secret, record = mint_key(args.name, tenant=args.tenant, models=models, admin=args.admin)
    await store.put_key(record)
    await store.close()
    if args.json:
        print(json.dumps({"api_key": secret, **_key_summary(record)}))
    else:
        print(secret)
        print(
            f"# {record.key_id} for '{record.name}' (tenant {record.tenant}). "
            "This key is shown once: store it now.",
            file=sys.stderr,
        )
    return 0


async def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    keys = await store.list_keys()
    await store.close()
    for key in keys:
        print(json.dumps(_key_summary(key)))
    return 0


async def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    target = args.key
    key_id = key_id_for(hash_key(target)) if target.startswith("er-") else target
    record = await store.get_key(key_id)
    if record is None:
        matches = [k for k in await store.list_keys() if k.name == target]
        record = matches[0] if len(matches) == 1 else None
    if record is None:
        await store.close()
        print(
            f"error: no key with id or name '{target}' (see 'edgeroute keys list')", file=sys.stderr
        )
        return 1
    await store.put_key(replace(record, revoked=True))
    await store.close()
    print(f"revoked {record.key_id} ({record.name})")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from edgeroute.devserver import run_dev_server

    return run_dev_server(
        settings, host=args.host, port=args.port, local_upstream=args.local_upstream
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeroute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway on this machine (SQLite store)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--local-upstream",
        action="store_true",
        help="also start llama.cpp's server with SmolLM2-135M as the 'small' model",
    )
    serve.set_defaults(func=_serve)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="mint a key; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--tenant", help="tenant the key bills to (default: its name)")
    create.add_argument("--models", nargs="*", help="models the key may use (default: all)")
    create.add_argument("--admin", action="store_true", help="may read every tenant's usage")
    create.add_argument("--json", action="store_true", help="print the key and record as JSON")
    create.set_defaults(func=_keys_create)
    listing = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(func=_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id, name, or the key itself")
    revoke.add_argument("key")
    revoke.set_defaults(func=_keys_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        result = args.func(args, settings)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
