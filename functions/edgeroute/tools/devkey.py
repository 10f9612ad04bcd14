"""The development key that ``edgeroute serve`` and a local ``edgeroute invoke`` share:
one key in the embedded store, its secret in a file only its owner can read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edgeroute.settings import Settings
from edgeroute.store import Store
from edgeroute.store.files import narrow, write_private
from edgeroute.store.keys import hash_key, key_id_for, mint_key


def dev_key_file(settings: Settings) -> Path:
    """Where the development key lives: beside the SQLite store."""
    return (Path(settings.sqlite_path).parent / "dev-key").absolute()


async def _valid(store: Store, secret: str | None) -> bool:
    record = await store.get_key(key_id_for(hash_key(secret))) if secret else None
    return record is not None and not record.revoked


def dev_key(store: Store, path: Path) -> str:
    """The development key: reused while it is valid, minted otherwise; its file is
    readable by its owner only (0600, in a 0700 folder when edgeroute creates it)."""
    secret = path.read_text().strip() if path.is_file() else None
    if secret and asyncio.run(_valid(store, secret)):
        narrow(path)  # a key file an older version left readable by others
        return secret
    secret, record = mint_key("dev", tenant="dev")
    asyncio.run(store.put_key(record))
    write_private(path, secret + "\n")
    return secret
