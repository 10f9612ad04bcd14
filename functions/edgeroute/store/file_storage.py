"""Where batch files live: one interface, two backends (S3 on AWS, a folder locally).

Names are relative paths (``files/<tenant>/<file id>.jsonl``, ``batch/parts/...``) that
the callers build from ids they generated, never from caller text, so a name never
escapes the backend's root. Local files are private (0600 in 0700 folders) like the
embedded store beside them; a write replaces the whole file atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, Protocol

from edgeroute.settings import Settings
from edgeroute.store.files import FILE_MODE, private_folder

UPLOAD_URL_TTL_S = 3600


class FileStorage(Protocol):
    bucket: str | None  # the S3 bucket; None for the local folder

    async def put(self, name: str, data: bytes) -> None: ...

    async def get(self, name: str) -> bytes:
        """The whole file; ``FileNotFoundError`` when absent."""
        ...

    async def delete(self, name: str) -> None:
        """Remove the file; absent is fine."""
        ...

    async def size(self, name: str) -> int | None:
        """Its size in bytes, ``None`` when absent."""
        ...

    def upload_url(self, name: str) -> str | None:
        """A presigned URL a client may PUT the file's bytes to (``None``: not offered)."""
        ...


class LocalFileStorage:
    bucket: str | None = None

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, name: str) -> Path:
        return self.folder / name

    async def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        private_folder(path.parent)
        staged = path.with_name(f".{path.name}.{os.getpid()}.new")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(staged, path)

    async def get(self, name: str) -> bytes:
        return await asyncio.to_thread(self._path(name).read_bytes)

    async def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    async def size(self, name: str) -> int | None:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            return None

    def upload_url(self, name: str) -> str | None:
        return None


class S3FileStorage:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket: str | None = bucket

    async def put(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(
            self.s3.put_object,
            Bucket=self.bucket,
            Key=name,
            Body=data,
            ContentType="application/jsonl",
        )

    async def get(self, name: str) -> bytes:
        try:
            obj = await asyncio.to_thread(self.s3.get_object, Bucket=self.bucket, Key=name)
        except self.s3.exceptions.NoSuchKey:
            raise FileNotFoundError(name) from None
        data: bytes = await asyncio.to_thread(obj["Body"].read)
        return data

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.s3.delete_object, Bucket=self.bucket, Key=name)

    async def size(self, name: str) -> int | None:
        try:
            head = await asyncio.to_thread(self.s3.head_object, Bucket=self.bucket, Key=name)
        except self.s3.exceptions.ClientError:
            return None
        return int(head.get("ContentLength", 0))

    def upload_url(self, name: str) -> str | None:
        url: str = self.s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": name},
            ExpiresIn=UPLOAD_URL_TTL_S,
        )
        return url


def file_storage(settings: Settings, s3: Any = None) -> FileStorage:
    """S3 when ``EDGEROUTE_BATCH_BUCKET`` names a bucket, else the local folder."""
    if settings.batch.bucket:
        from edgeroute.store.s3 import make_s3_client

        return S3FileStorage(s3 or make_s3_client(), settings.batch.bucket)
    folder = settings.batch.files_dir or str(Path(settings.sqlite_path).parent / "files")
    return LocalFileStorage(Path(folder).absolute())
