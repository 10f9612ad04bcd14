from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from edgeroute.errors import AuthenticationFailed
from edgeroute.pipeline.authenticate import Authenticator, bearer_token
from edgeroute.store.keys import hash_key, mint_key
from edgeroute.store.sqlite import SQLiteStore


def test_minted_key_has_prefix_and_256_bits() -> None:
    secret, record = mint_key("team-a")
    assert secret.startswith("er-") and len(secret) == 3 + 43
    assert record.key_hash == hash_key(secret)
    assert secret not in repr(record)
    assert mint_key("team-a")[0] != secret


async def test_store_keeps_only_the_hash(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    secret, record = mint_key("team-a")
    await store.put_key(record)
    await store.close()
    assert secret.encode() not in (tmp_path / "s.db").read_bytes()


async def test_revocation_takes_effect_within_ttl(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    secret, record = mint_key("team-a")
    await store.put_key(record)
    auth = Authenticator(store, ttl_s=0.2)
    assert (await auth.authenticate(secret)).key_id == record.key_id
    await store.put_key(replace(record, revoked=True))
    await asyncio.sleep(0.25)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        await auth.authenticate(secret)


async def test_unknown_and_malformed_keys(tmp_path: Path) -> None:
    auth = Authenticator(SQLiteStore(tmp_path / "s.db"))
    with pytest.raises(AuthenticationFailed, match="no such key"):
        await auth.authenticate("er-unknown")
    with pytest.raises(AuthenticationFailed, match="start with 'er-'"):
        await auth.authenticate("sk-openai-key")


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer er-abc") == "er-abc"
    assert bearer_token(None, "er-xyz") == "er-xyz"
    with pytest.raises(AuthenticationFailed, match="Missing API key"):
        bearer_token("Basic abc")
