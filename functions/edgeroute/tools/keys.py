"""``edgeroute keys``: create, update, list, rotate and revoke API keys in the store."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from edgeroute.errors import ConfigError
from edgeroute.pipeline.scopes import SCOPE_NAMES
from edgeroute.settings import Settings
from edgeroute.store import ApiKey, KeyLimits, KeyPolicy, Store, open_store
from edgeroute.store.base import GUARDRAIL_STAGES, PII_MODES
from edgeroute.store.keys import hash_key, key_id_for, mint_key
from edgeroute.tools.arguments import UsageError, duration_s, networks, scopes


def _key_summary(key: ApiKey) -> dict[str, Any]:
    limits = key.limits
    return {
        "key_id": key.key_id,
        "name": key.name,
        "tenant": key.tenant,
        "models": list(key.models) or "all",
        "admin": key.admin,
        "priority": key.priority,
        "revoked": key.revoked,
        "ip_allow": list(key.ip_allow) or "any",
        "expires_at": None
        if key.expires_at is None
        else datetime.fromtimestamp(key.expires_at, UTC).isoformat(timespec="seconds"),
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "max_concurrent": limits.max_concurrent,
        "tokens_per_day": limits.tokens_per_day,
        "budget_usd": None
        if limits.budget_usd_micros is None
        else limits.budget_usd_micros / 1_000_000,
        "scopes": list(key.policy.scopes) or "all",
        "pii": key.policy.pii or "default",
        "guardrail": key.policy.guardrail or "default",
        "audit_bodies": key.policy.audit_bodies,
    }


def _live(key: ApiKey, now: float) -> bool:
    return not key.revoked and not key.expired(now)


async def _named(store: Store, name: str) -> list[ApiKey]:
    """The keys named ``name`` that still work, newest first (a rotated key's replacement
    before the key it replaces)."""
    now = time.time()
    named = [k for k in await store.list_keys() if k.name == name and _live(k, now)]
    return sorted(named, key=lambda k: k.created_at, reverse=True)


async def _find_key(store: Store, target: str) -> ApiKey | None:
    """A key by id, by the key itself, or by name (names are unique per tenant)."""
    key_id = key_id_for(hash_key(target)) if target.startswith("er-") else target
    record = await store.get_key(key_id)
    if record is not None:
        return record
    named = await _named(store, target)
    tenants = sorted({k.tenant for k in named})
    if len(tenants) > 1:
        raise UsageError(
            f"tenants {', '.join(tenants)} each have a key named '{target}': name it by its "
            "key id (see 'edgeroute keys list')"
        )
    if named:
        return named[0]
    # A revoked or expired key, named by its (then unique) name.
    matches = [k for k in await store.list_keys() if k.name == target]
    return matches[0] if len(matches) == 1 else None


def _known_models(settings: Settings, values: list[str] | None) -> tuple[str, ...]:
    """``--models`` as the registry's model names (an alias names its model); a model the
    registry lacks, or a registry that does not load, is a usage error."""
    wanted = _models(values)
    if not wanted:
        return ()
    from edgeroute.config.registry import load_registry

    try:
        registry = load_registry(settings.registry, settings.registry_env_allow)
    except ConfigError as exc:
        raise UsageError(
            f"--models cannot be checked: the registry does not load ({exc}); fix it or "
            "EDGEROUTE_REGISTRY"
        ) from None
    specs = {name: registry.get(name) for name in wanted}
    unknown = [name for name, spec in specs.items() if spec is None]
    if unknown:
        known = ", ".join(sorted(m.name for m in registry.models()))
        raise UsageError(
            f"--models: {', '.join(unknown)} not in the registry {registry.source}; "
            f"known models: {known}"
        )
    return tuple(dict.fromkeys(spec.name for spec in specs.values() if spec is not None))


async def _open_key(settings: Settings, target: str) -> tuple[Store, ApiKey]:
    """The store and the key ``target`` names; naming none is a usage error (exit 2),
    raised with the store closed."""
    store = open_store(settings)
    try:
        record = await _find_key(store, target)
    except BaseException:
        await store.close()
        raise
    if record is None:
        await store.close()
        raise UsageError(
            f"no key with id or name '{target}': 'edgeroute keys list' lists them "
            "(a key itself, er-..., names its key too)"
        )
    return store, record


async def _keys_update(args: argparse.Namespace, settings: Settings) -> int:
    store, record = await _open_key(settings, args.key)
    changes: dict[str, Any] = {
        "limits": _limits(args, record.limits),
        "policy": _policy(args, record.policy),
    }
    if args.models is not None:
        changes["models"] = _known_models(settings, args.models)
    if args.priority is not None:
        changes["priority"] = args.priority
    if args.expires_in is not None:
        changes["expires_at"] = time.time() + args.expires_in
    if args.ip_allow is not None:
        changes["ip_allow"] = args.ip_allow
    updated = replace(record, **changes)
    await store.put_key(updated)
    await store.close()
    print(json.dumps(_key_summary(updated)))
    return 0


def _models(values: list[str] | None) -> tuple[str, ...]:
    return tuple(m for item in values or () for m in item.split(",") if m)


def _limits(args: argparse.Namespace, base: KeyLimits | None = None) -> KeyLimits:
    """Limits from the flags; a flag left out keeps ``base``'s value, 0 means unlimited."""
    base = base or KeyLimits()

    def pick(flag: int | None, current: int | None) -> int | None:
        if flag is None:
            return current
        return flag or None

    budget = args.budget_usd
    return KeyLimits(
        rpm=pick(args.rpm, base.rpm),
        tpm=pick(args.tpm, base.tpm),
        max_concurrent=pick(args.max_concurrent, base.max_concurrent),
        tokens_per_day=pick(args.tokens_per_day, base.tokens_per_day),
        budget_usd_micros=base.budget_usd_micros
        if budget is None
        else (round(budget * 1_000_000) or None),
    )


def _policy(args: argparse.Namespace, base: KeyPolicy | None = None) -> KeyPolicy:
    """The key policy from the flags; a flag left out keeps ``base``'s value."""
    base = base or KeyPolicy()
    return KeyPolicy(
        scopes=base.scopes if args.scopes is None else args.scopes,
        pii=base.pii if args.pii is None else args.pii,
        guardrail=base.guardrail if args.guardrail is None else args.guardrail,
        audit_bodies=base.audit_bodies if args.audit_bodies is None else args.audit_bodies,
    )


async def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    models = _known_models(settings, args.models)
    tenant = args.tenant or args.name
    store = open_store(settings)
    taken = [k for k in await _named(store, args.name) if k.tenant == tenant]
    if taken:
        await store.close()
        raise UsageError(
            f"tenant '{tenant}' already has a key named '{args.name}' ({taken[0].key_id}): "
            f"choose another --name, 'edgeroute keys rotate {args.name}' to replace it, or "
            f"'edgeroute keys revoke {args.name}' first"
        )
    secret, record = mint_key(
        args.name,
        tenant=tenant,
        models=models,
        admin=args.admin,
        priority=args.priority or 0,
        limits=_limits(args),
        expires_at=None if args.expires_in is None else time.time() + args.expires_in,
        ip_allow=args.ip_allow or (),
        policy=_policy(args),
    )
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
    store = open_store(settings)
    keys = await store.list_keys()
    await store.close()
    for key in keys:
        print(json.dumps(_key_summary(key)))
    return 0


async def _keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    """A new key with the old one's name, tenant, models, limits and rights; the old one
    keeps working for ``--grace`` (so clients can move), then expires."""
    store, old = await _open_key(settings, args.key)
    now = time.time()
    secret, new = mint_key(
        old.name,
        tenant=old.tenant,
        models=old.models,
        admin=old.admin,
        priority=old.priority,
        limits=old.limits,
        expires_at=None if args.expires_in is None else now + args.expires_in,
        ip_allow=old.ip_allow,
        policy=old.policy,
    )
    ends = now + args.grace
    retiring = replace(old, expires_at=min(ends, old.expires_at or ends))
    await store.put_key(new)
    await store.put_key(retiring)
    await store.close()
    if args.json:
        print(
            json.dumps({"api_key": secret, **_key_summary(new), "replaces": _key_summary(retiring)})
        )
    else:
        print(secret)
        print(
            f"# {new.key_id} replaces {old.key_id} ('{old.name}'), which works until "
            f"{_key_summary(retiring)['expires_at']}. This key is shown once: store it now.",
            file=sys.stderr,
        )
    return 0


async def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    target = args.key
    store, record = await _open_key(settings, target)
    # By name: the key a rotation is retiring goes too, not only its replacement.
    named = [k for k in await _named(store, target) if k.tenant == record.tenant]
    for key in named or [record]:
        await store.put_key(replace(key, revoked=True))
        print(f"revoked {key.key_id} ({key.name})")
    await store.close()
    return 0


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("limits (0 means unlimited)")
    group.add_argument("--rpm", type=int, help="requests per minute")
    group.add_argument("--tpm", type=int, help="tokens per minute (prompt + max_tokens reserved)")
    group.add_argument("--tokens-per-day", type=int, help="tokens per UTC day")
    group.add_argument("--max-concurrent", type=int, help="requests in flight at once")
    group.add_argument("--budget-usd", type=float, help="monthly budget in US dollars")
    group.add_argument("--priority", type=int, help="higher keeps its tier under congestion")
    parser.add_argument(
        "--expires-in", type=duration_s, metavar="DURATION", help="key expires after, e.g. 30d"
    )
    parser.add_argument(
        "--ip-allow",
        type=networks,
        metavar="CIDR[,CIDR]",
        help="networks the key may be used from (default: anywhere; '' clears)",
    )
    policy = parser.add_argument_group("policy (left out: the operator's default)")
    policy.add_argument(
        "--scopes",
        type=scopes,
        metavar="SCOPE[,SCOPE]",
        help=f"endpoints the key may call, from {', '.join(SCOPE_NAMES)} ('admin', with "
        "--admin: other tenants' usage; default: every endpoint; '' clears)",
    )
    policy.add_argument(
        "--pii", choices=PII_MODES, help="personal data in prompts: mask, block or allow"
    )
    policy.add_argument(
        "--guardrail",
        choices=GUARDRAIL_STAGES,
        help="moderation: off, on input, or on input and buffered output",
    )
    policy.add_argument(
        "--audit-bodies",
        action=argparse.BooleanOptionalAction,
        help="keep prompt and answer bodies in the audit archive",
    )


def add_keys_parser(sub: Any) -> None:
    """The ``keys`` command and its subcommands, under the main parser's ``sub``."""
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="mint a key; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--tenant", help="tenant the key bills to (default: its name)")
    create.add_argument("--models", nargs="*", help="models the key may use (default: all)")
    create.add_argument("--admin", action="store_true", help="may read every tenant's usage")
    create.add_argument("--json", action="store_true", help="print the key and record as JSON")
    _limit_flags(create)
    create.set_defaults(func=_keys_create)
    update = keys_sub.add_parser("update", help="change a key's limits, models or priority")
    update.add_argument("key", help="key id, name, or the key itself")
    update.add_argument("--models", nargs="*", help="models the key may use (none: all)")
    _limit_flags(update)
    update.set_defaults(func=_keys_update)
    listing = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(func=_keys_list)
    rotate = keys_sub.add_parser(
        "rotate", help="mint a replacement key; the old one works for a grace period"
    )
    rotate.add_argument("key", help="key id, name, or the key itself")
    rotate.add_argument(
        "--grace",
        type=duration_s,
        default=86_400.0,
        metavar="DURATION",
        help="how long the old key keeps working (default 1d)",
    )
    rotate.add_argument(
        "--expires-in", type=duration_s, metavar="DURATION", help="the new key expires after"
    )
    rotate.add_argument("--json", action="store_true", help="print the key and records as JSON")
    rotate.set_defaults(func=_keys_rotate)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id, name, or the key itself")
    revoke.add_argument("key")
    revoke.set_defaults(func=_keys_revoke)
