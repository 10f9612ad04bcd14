"""Keys can expire, and rotate: `keys create --expires-in 30d`, `keys rotate KEY --grace
1h` (a replacement with the same rights; the old key works until the grace ends)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from edgeroute.errors import AuthenticationFailed
from edgeroute.pipeline.authenticate import Authenticator
from edgeroute.store.base import KeyLimits
from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.tools.cli import main


async def test_an_expired_key_is_refused_even_from_the_cache() -> None:
    store = SQLiteStore(":memory:")
    secret, key = mint_key("k", expires_at=time.time() + 60)
    await store.put_key(key)
    auth = Authenticator(store, ttl_s=3600)
    assert (await auth.authenticate(secret)).key_id == key.key_id  # cached from here on
    await store.put_key(key)
    later = time.time() + 61
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("edgeroute.pipeline.authenticate.time.time", lambda: later)
        with pytest.raises(AuthenticationFailed) as refused:
            await auth.authenticate(secret)
    assert refused.value.code == "expired_api_key"
    assert "expired at" in refused.value.message and "keys rotate" in refused.value.message
    await store.close()


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_rotate_keeps_rights_and_retires_the_old_key_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))
    code, out, _ = _cli(
        capsys,
        "keys",
        "create",
        "--name",
        "team",
        "--rpm",
        "7",
        "--max-concurrent",
        "2",
        "--pii",
        "block",
        "--audit-bodies",
        "--expires-in",
        "30d",
        "--json",
    )
    assert code == 0
    created = json.loads(out)
    assert created["expires_at"] is not None and created["rpm"] == 7
    code, out, _ = _cli(capsys, "keys", "rotate", "team", "--grace", "1h", "--json")
    assert code == 0
    rotated = json.loads(out)
    assert rotated["rpm"] == 7 and rotated["tenant"] == "team" and rotated["expires_at"] is None
    assert rotated["max_concurrent"] == 2 and rotated["pii"] == "block" and rotated["audit_bodies"]
    assert rotated["replaces"]["key_id"] == created["key_id"]

    asyncio.run(_check_rotation(tmp_path, monkeypatch, created, rotated))


async def _check_rotation(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    created: dict[str, str],
    rotated: dict[str, str],
) -> None:
    store = SQLiteStore(tmp_path / "edgeroute.db")
    auth = Authenticator(store, ttl_s=0)
    assert (await auth.authenticate(rotated["api_key"])).limits == KeyLimits(
        rpm=7, max_concurrent=2
    )
    assert (await auth.authenticate(created["api_key"])).key_id == created["key_id"]
    after_grace = time.time() + 3601
    monkeypatch.setattr("edgeroute.pipeline.authenticate.time.time", lambda: after_grace)
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(created["api_key"])
    assert (await auth.authenticate(rotated["api_key"])).key_id == rotated["key_id"]
    await store.close()


@pytest.mark.parametrize("bad", ["30", "d", "-1d", "1y", "infd", "nand"])
def test_a_bad_duration_is_a_usage_error(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))
    with pytest.raises(SystemExit) as stopped:
        main(["keys", "create", "--name", "x", f"--expires-in={bad}"])
    assert stopped.value.code == 2
    assert "is not a duration: use a number and s, m, h or d" in capsys.readouterr().err
