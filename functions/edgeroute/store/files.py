"""Files only the user running edgeroute may read: the embedded store (keys' hashes,
cached answers, the ledger) and the development key.

Invariant: such a file is mode 0600 from the moment it exists (created so, never
created wider and narrowed later), a file left wider by an older version is narrowed
when edgeroute opens it, and a folder edgeroute creates for them is mode 0700.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents with mode 0700; existing ones are left
    as they are (they may be the user's own, shared on purpose)."""
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            created.mkdir(mode=FOLDER_MODE)
            created.chmod(FOLDER_MODE)  # exactly 0700, whatever the umask


def narrow(path: Path) -> None:
    """Take away what group and others may do with an existing file."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o077:
            path.chmod(FILE_MODE)


def create_private(path: Path) -> None:
    """Make sure ``path`` exists, mode 0600 (empty when new), in a private folder if new."""
    private_folder(path.parent)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, FILE_MODE))
    narrow(path)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in a file that is 0600 before a byte is written; a
    reader that opened the old file never sees the new text."""
    private_folder(path.parent)
    staged = path.with_name(f".{path.name}.{os.getpid()}.new")
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(staged, path)
