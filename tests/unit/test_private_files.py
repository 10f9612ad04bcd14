"""The embedded store and the development key are readable by their owner only: files
0600 (the store's -wal and -shm side files too), folders edgeroute creates 0700."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeroute.store.files import write_private
from edgeroute.store.keys import hash_key, key_id_for
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.tools.devkey import dev_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask, which leaves new files readable by everyone unless asked not to."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_a_new_store_and_its_side_files_are_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deeper" / "edgeroute.db"
    store = SQLiteStore(path)
    try:
        await store.put_health("http://up:1/v1", {"ok": True}, expires_at=2e9)  # WAL in use
        side_files = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(p.exists() for p in side_files)
        assert {p.name: mode(p) for p in [path, *side_files]} == {
            "edgeroute.db": 0o600,
            "edgeroute.db-wal": 0o600,
            "edgeroute.db-shm": 0o600,
        }
        assert mode(tmp_path / "state") == 0o700 and mode(tmp_path / "state" / "deeper") == 0o700
    finally:
        await store.close()


async def test_a_store_an_older_version_left_readable_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "edgeroute.db"
    first = SQLiteStore(path)
    await first.put_health("http://up:1/v1", {"ok": True}, expires_at=2e9)
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.chmod(0o644)
    second = SQLiteStore(path)
    try:
        assert mode(path) == 0o600
        assert mode(Path(f"{path}-wal")) == 0o600 and mode(Path(f"{path}-shm")) == 0o600
    finally:
        await second.close()
        await first.close()


def test_the_dev_key_file_is_the_owners_only(tmp_path: Path) -> None:
    store = SQLiteStore(":memory:")
    key_file = tmp_path / "fresh" / "dev-key"
    dev_key(store, key_file)  # runs its own event loop, as `edgeroute serve` does
    secret = key_file.read_text().strip()
    assert mode(key_file) == 0o600 and mode(key_file.parent) == 0o700
    assert asyncio.run(store.get_key(key_id_for(hash_key(secret)))) is not None

    key_file.chmod(0o644)  # as an older version left it: still valid, so kept, but narrowed
    dev_key(store, key_file)
    assert key_file.read_text().strip() == secret and mode(key_file) == 0o600
    asyncio.run(store.close())


def test_a_private_write_replaces_the_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "dev-key"
    path.write_text("old\n")
    path.chmod(0o644)
    write_private(path, "new\n")
    assert path.read_text() == "new\n" and mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-key"]
