"""The audit archive: one JSON document per request whose bodies are kept (the audit
record, the prompt and the answer), in S3 or in a local folder.

Invariant: a document lives at ``audit/<tenant>/<yyyy>/<mm>/<dd>/<request id>.json``
(UTC date of the request; tenant and id percent-encoded, so no name can climb out of
its tenant's prefix); locally the folder plays ``audit/``, its files are 0600 in 0700
folders, and files older than the retention period are swept; in S3 the bucket's
lifecycle rule expires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from edgeroute.settings import Settings
from edgeroute.store.files import write_private
from edgeroute.store.s3 import make_s3_client

PREFIX = "audit/"
SWEEP_EVERY_S = 3600.0  # a local archive sweeps on its first write, then at most hourly

log = logging.getLogger("edgeroute.store.archive")

Document = dict[str, Any]


def _segment(name: str) -> str:
    """``name`` as one path segment: percent-encoded, and never ``.`` or ``..``."""
    encoded = quote(name, safe="-_.@+=")
    return encoded.replace(".", "%2E") if set(encoded) <= {"."} else encoded


def object_key(tenant: str, request_id: str, when: float) -> str:
    """Where a request's document lives, under ``audit/``."""
    day = datetime.fromtimestamp(when, UTC).strftime("%Y/%m/%d")
    return f"{PREFIX}{_segment(tenant)}/{day}/{_segment(request_id)}.json"


def _file_name(request_id: str) -> str:
    return f"{_segment(request_id)}.json"


class Archive(Protocol):
    """Where documents are kept: a folder or an S3 bucket."""

    where: str  # for people: the folder, or s3://bucket/audit/

    async def put(self, tenant: str, request_id: str, when: float, document: Document) -> None:
        """Keep ``document`` as the request's (replacing one kept before)."""

    async def find(self, request_id: str, tenant: str | None = None) -> Document | None:
        """The request's document, or None; ``tenant`` narrows the search."""

    async def since(self, tenant: str, start: float) -> list[Document]:
        """The tenant's documents kept at or after ``start``, oldest first."""

    def sweep(self, now: float | None = None) -> int:
        """Delete what is past the retention period; how many went."""


class FolderArchive:
    """The archive as a local folder (``edgeroute serve``'s, by default)."""

    def __init__(self, root: Path, retention_days: int) -> None:
        self.root = root
        self.where = str(root)
        self.retention_s = retention_days * 86_400.0
        self._swept = 0.0

    def _path(self, key: str) -> Path:
        return self.root / key.removeprefix(PREFIX)

    async def put(self, tenant: str, request_id: str, when: float, document: Document) -> None:
        path = self._path(object_key(tenant, request_id, when))
        await asyncio.to_thread(write_private, path, json.dumps(document))
        if time.time() - self._swept >= SWEEP_EVERY_S:
            await asyncio.to_thread(self.sweep)

    def _files(self, tenant: str | None, name: str = "*.json") -> list[Path]:
        base = self.root / _segment(tenant) if tenant is not None else self.root
        pattern = f"*/*/*/{name}" if tenant is not None else f"*/*/*/*/{name}"
        return sorted(base.glob(pattern)) if base.is_dir() else []

    async def find(self, request_id: str, tenant: str | None = None) -> Document | None:
        found = self._files(tenant, _file_name(request_id))
        return _read(found[0]) if found else None

    async def since(self, tenant: str, start: float) -> list[Document]:
        files = [p for p in self._files(tenant) if _mtime(p) >= start]
        return [_read(p) for p in sorted(files, key=_mtime)]

    def sweep(self, now: float | None = None) -> int:
        """Delete documents older than the retention period (and the day folders they
        leave empty); returns how many went."""
        now = time.time() if now is None else now
        self._swept = now
        gone = 0
        for path in self._files(None):
            if _mtime(path) < now - self.retention_s:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    gone += 1
                for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
                    with contextlib.suppress(OSError):  # not empty: other days still live
                        folder.rmdir()
        if gone:
            log.info(
                "audit archive %s: %d documents past %g days deleted",
                self.where,
                gone,
                self.retention_s / 86_400,
            )
        return gone


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _read(path: Path) -> Document:
    document: Document = json.loads(path.read_text(encoding="utf-8"))
    return document


class S3Archive:
    """The archive in an S3 bucket (the stack's, on AWS); expiry is the bucket's
    lifecycle rule on ``audit/``."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.where = f"s3://{bucket}/{PREFIX}"
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:  # made on first use: a SnapStart snapshot holds none
            self._client = make_s3_client()
        return self._client

    async def put(self, tenant: str, request_id: str, when: float, document: Document) -> None:
        await asyncio.to_thread(
            self._s3().put_object,
            Bucket=self.bucket,
            Key=object_key(tenant, request_id, when),
            Body=json.dumps(document).encode(),
            ContentType="application/json",
            ServerSideEncryption="AES256",
        )

    def _keys(self, prefix: str) -> list[tuple[str, float]]:
        """Every (key, last modified) under ``prefix``."""
        out: list[tuple[str, float]] = []
        for page in (
            self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        ):
            out += [(o["Key"], o["LastModified"].timestamp()) for o in page.get("Contents", ())]
        return out

    def _get(self, key: str) -> Document:
        body = self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        document: Document = json.loads(body)
        return document

    def _prefix(self, tenant: str | None) -> str:
        return PREFIX if tenant is None else f"{PREFIX}{_segment(tenant)}/"

    async def find(self, request_id: str, tenant: str | None = None) -> Document | None:
        suffix = "/" + _file_name(request_id)
        keys = await asyncio.to_thread(self._keys, self._prefix(tenant))
        found = [key for key, _ in keys if key.endswith(suffix)]
        return await asyncio.to_thread(self._get, found[0]) if found else None

    async def since(self, tenant: str, start: float) -> list[Document]:
        keys = await asyncio.to_thread(self._keys, self._prefix(tenant))
        wanted = sorted((when, key) for key, when in keys if when >= start)
        return [await asyncio.to_thread(self._get, key) for _, key in wanted]

    def sweep(self, now: float | None = None) -> int:
        """Nothing to do: the bucket's lifecycle rule expires ``audit/``."""
        return 0


def open_archive(settings: Settings) -> Archive | None:
    """The archive the settings name: the S3 bucket, else the folder (by default
    ``audit/`` beside the SQLite store's file); None when there is nowhere to keep
    bodies (an in-memory or DynamoDB store and no folder or bucket set)."""
    audit = settings.audit
    if audit.bucket:
        return S3Archive(audit.bucket)
    if audit.dir:
        return FolderArchive(Path(audit.dir), audit.retention_days)
    if settings.store == "sqlite" and settings.sqlite_path != ":memory:":
        return FolderArchive(Path(settings.sqlite_path).parent / "audit", audit.retention_days)
    return None
