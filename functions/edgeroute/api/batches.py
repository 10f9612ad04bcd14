"""OpenAI's Files and Batches API, per tenant: ``/v1/files`` and ``/v1/batches``.

Files' bytes go to the app's ``FileStorage`` (S3 on AWS, a folder under ``edgeroute
serve``), their rows and the batches' rows to the jobs table (store/batch_records.py).
Creating a batch hands its id to the app's ``batch_dispatch`` (set by whoever builds
the app: an asyncio task in ``edgeroute serve``, the resume queue on AWS), so this
module never runs a job itself; the app's lifespan starts and stops that dispatch (a
local one resumes the jobs a stopped process left). Another tenant's id answers 404
like an unknown one.

Uploads larger than ``EDGEROUTE_BATCH_MAX_UPLOAD_BYTES`` (and than the request body
limit) go to S3 directly: ``POST /v1/files/uploads`` answers a file id and a presigned
PUT URL; the file is read when a batch names it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from edgeroute.api.openapi import error_responses
from edgeroute.api.routes import Counted, gateway, single_query_values
from edgeroute.errors import InvalidRequest, NotFound, PayloadTooLarge, PermissionDenied
from edgeroute.store import batch_records as rows
from edgeroute.store.file_storage import UPLOAD_URL_TTL_S, FileStorage, file_storage
from edgeroute.types import Json

MAX_PAGE = 100
PURPOSES = ("batch",)


class BatchDispatch(Protocol):
    async def __call__(self, job_id: str) -> None: ...
    def start(self) -> None: ...
    async def stop(self) -> None: ...


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    dispatch: BatchDispatch | None = getattr(app.state, "batch_dispatch", None)
    if dispatch is not None:
        dispatch.start()
    yield
    if dispatch is not None:
        await dispatch.stop()


router = APIRouter(dependencies=[Depends(single_query_values)], lifespan=_lifespan)


def files_of(request: Request) -> FileStorage:
    """The app's file storage, made from the settings on first use."""
    state = request.app.state
    if getattr(state, "batch_files", None) is None:
        state.batch_files = file_storage(gateway(request).settings)
    storage: FileStorage = state.batch_files
    return storage


def _no_file(file_id: str, param: str = "file_id") -> NotFound:
    return NotFound(
        f"No file with id '{file_id}'. GET /v1/files lists this key's files.", param=param
    )


def _no_batch(batch_id: str) -> NotFound:
    return NotFound(
        f"No batch with id '{batch_id}'. GET /v1/batches lists this key's batches.",
        param="batch_id",
    )


def _listing(data: list[Json], has_more: bool) -> Json:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def _purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise InvalidRequest(
            f"Invalid 'purpose' {purpose!r}: this gateway stores files for 'batch' only.",
            param="purpose",
        )
    return purpose


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


# -- files --------------------------------------------------------------------------
@router.post("/v1/files", responses=error_responses(413))
async def upload_file(
    request: Request,
    principal: Counted,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
) -> Json:
    _purpose(purpose)
    cap = gateway(request).settings.batch.max_upload_bytes
    data = await file.read(cap + 1)
    if len(data) > cap:
        raise PayloadTooLarge(
            f"The file is larger than {cap} bytes (EDGEROUTE_BATCH_MAX_UPLOAD_BYTES). "
            "Split it, or upload it with POST /v1/files/uploads and a PUT to the URL it "
            "answers.",
            param="file",
        )
    storage = files_of(request)
    file_id = rows.new_id("file")
    name = rows.file_name(principal.tenant, file_id)
    await storage.put(name, data)
    row = rows.file_row(
        principal.tenant,
        file_id,
        filename=file.filename or "upload.jsonl",
        size=len(data),
        bucket=storage.bucket,
        name=name,
    )
    await gateway(request).store.put_job(file_id, row, expires_at=time.time() + rows.RETENTION_S)
    return rows.public_file(row)


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=256)
    purpose: str = "batch"


@router.post("/v1/files/uploads", responses=error_responses())
async def presigned_upload(request: Request, body: UploadRequest, principal: Counted) -> Json:
    """A file id and a URL to PUT its bytes to (S3 only), for files above the upload cap."""
    _purpose(body.purpose)
    storage = files_of(request)
    file_id = rows.new_id("file")
    name = rows.file_name(principal.tenant, file_id)
    url = storage.upload_url(name)
    if url is None:
        raise InvalidRequest(
            "Presigned uploads need S3 storage (EDGEROUTE_BATCH_BUCKET); this gateway "
            "keeps files locally: upload with POST /v1/files.",
            param="filename",
        )
    row = rows.file_row(
        principal.tenant,
        file_id,
        filename=body.filename,
        size=0,
        bucket=storage.bucket,
        name=name,
        status="uploaded",  # bytes pending; read when a batch names the file
    )
    await gateway(request).store.put_job(file_id, row, expires_at=time.time() + rows.RETENTION_S)
    return {
        "file": rows.public_file(row),
        "upload_url": url,
        "method": "PUT",
        "expires_in": UPLOAD_URL_TTL_S,
    }


@router.get("/v1/files", responses=error_responses())
async def list_files(
    request: Request, principal: Counted, limit: Limit = 20, after: str | None = None
) -> Json:
    found, more = await rows.page(gateway(request).store, principal.tenant, "file", limit, after)
    return _listing([rows.public_file(r) for r in found], more)


async def _file(request: Request, tenant: str, file_id: str) -> Json:
    row = await rows.owned(gateway(request).store, file_id, tenant, "file")
    if row is None:
        raise _no_file(file_id)
    return row


@router.get("/v1/files/{file_id}", responses=error_responses(404))
async def retrieve_file(request: Request, file_id: str, principal: Counted) -> Json:
    return rows.public_file(await _file(request, principal.tenant, file_id))


@router.get("/v1/files/{file_id}/content", responses=error_responses(404))
async def file_content(request: Request, file_id: str, principal: Counted) -> Response:
    row = await _file(request, principal.tenant, file_id)
    try:
        data = await storage_of(request, row).get(str(row["name"]))
    except FileNotFoundError:
        raise NotFound(
            f"The file '{file_id}' has no content yet: PUT its bytes to the upload URL.",
            param="file_id",
        ) from None
    return Response(data, media_type="application/jsonl")


@router.delete("/v1/files/{file_id}", responses=error_responses(404))
async def delete_file(request: Request, file_id: str, principal: Counted) -> Json:
    row = await _file(request, principal.tenant, file_id)
    await storage_of(request, row).delete(str(row["name"]))
    unlisted = {k: v for k, v in row.items() if not k.startswith("_")}
    unlisted["status"] = "deleted"
    await gateway(request).store.put_job(file_id, unlisted, expires_at=time.time() + 3600)
    return {"id": file_id, "object": "file", "deleted": True}


def storage_of(request: Request, row: Json) -> FileStorage:
    """The storage a file row's bytes are in: the app's (the batch runner may have
    written outputs to another bucket: the one an S3-triggered job came from)."""
    storage = files_of(request)
    bucket = row.get("bucket")
    if bucket and bucket != storage.bucket:
        from edgeroute.store.file_storage import S3FileStorage
        from edgeroute.store.s3 import make_s3_client

        return S3FileStorage(make_s3_client(), str(bucket))
    return storage


# -- batches ------------------------------------------------------------------------
class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_file_id: str = Field(min_length=1)
    endpoint: str
    completion_window: str = rows.COMPLETION_WINDOW
    metadata: dict[str, str] | None = Field(default=None, max_length=16)


async def _input_file(request: Request, tenant: str, file_id: str) -> Json:
    store = gateway(request).store
    row = await rows.owned(store, file_id, tenant, "file")
    if row is None:
        raise _no_file(file_id, "input_file_id")
    if row.get("purpose") != "batch":
        raise InvalidRequest(
            f"The file '{file_id}' has purpose {row.get('purpose')!r}; a batch reads files "
            "uploaded with purpose 'batch'.",
            param="input_file_id",
        )
    if row.get("status") == "uploaded":  # a presigned upload: are the bytes there now?
        size = await storage_of(request, row).size(str(row["name"]))
        if size is None:
            raise InvalidRequest(
                f"The file '{file_id}' has no content yet: PUT its bytes to the upload URL "
                "POST /v1/files/uploads answered, then create the batch.",
                param="input_file_id",
            )
        row.update(status="processed", bytes=size)
        await store.put_job(file_id, row, expires_at=time.time() + rows.RETENTION_S)
    return row


@router.post("/v1/batches", responses=error_responses(403, 404))
async def create_batch(request: Request, body: BatchRequest, principal: Counted) -> Json:
    if (reason := rows.cannot_run_as(principal)) is not None:
        raise PermissionDenied(f"This batch could not run: {reason}.", code="batch_principal")
    if body.endpoint not in rows.ENDPOINTS:
        raise InvalidRequest(
            f"Invalid 'endpoint' {body.endpoint!r}: choose one of {', '.join(rows.ENDPOINTS)}.",
            param="endpoint",
        )
    if body.completion_window != rows.COMPLETION_WINDOW:
        raise InvalidRequest(
            f"Invalid 'completion_window' {body.completion_window!r}: only "
            f"{rows.COMPLETION_WINDOW!r} is supported.",
            param="completion_window",
        )
    source = await _input_file(request, principal.tenant, body.input_file_id)
    batch_id = rows.new_id("batch")
    row = rows.batch_row(
        principal.tenant,
        batch_id,
        key_id=principal.key_id,
        endpoint=body.endpoint,
        input_file_id=body.input_file_id,
        source={"bucket": source.get("bucket"), "name": source["name"]},
        metadata=body.metadata,
        window_s=gateway(request).settings.batch.window_s,
    )
    gw = gateway(request)
    await gw.store.put_job(batch_id, row, expires_at=row["expires_at"] + rows.RETENTION_S)
    dispatch: BatchDispatch | None = getattr(request.app.state, "batch_dispatch", None)
    if dispatch is not None:
        await dispatch(batch_id)
    return rows.public_batch(row)


async def _batch(request: Request, tenant: str, batch_id: str) -> Json:
    row = await rows.owned(gateway(request).store, batch_id, tenant, "batch")
    if row is None:
        raise _no_batch(batch_id)
    return row


async def _shown(request: Request, row: Json) -> Json:
    return rows.public_batch(
        row, await rows.cancel_requested(gateway(request).store, str(row["id"]))
    )


@router.get("/v1/batches", responses=error_responses())
async def list_batches(
    request: Request, principal: Counted, limit: Limit = 20, after: str | None = None
) -> Json:
    found, more = await rows.page(gateway(request).store, principal.tenant, "batch", limit, after)
    return _listing([await _shown(request, r) for r in found], more)


@router.get("/v1/batches/{batch_id}", responses=error_responses(404))
async def retrieve_batch(request: Request, batch_id: str, principal: Counted) -> Json:
    return await _shown(request, await _batch(request, principal.tenant, batch_id))


@router.post("/v1/batches/{batch_id}/cancel", responses=error_responses(404))
async def cancel_batch(request: Request, batch_id: str, principal: Counted) -> Json:
    row = await _batch(request, principal.tenant, batch_id)
    if row.get("status") in rows.TERMINAL:
        return rows.public_batch(row)
    now = time.time()
    marker_id = rows.cancel_marker(batch_id)
    marker = {"job_id": marker_id, "cancelling_at": now}
    await gateway(request).store.put_job(marker_id, marker, expires_at=now + rows.WINDOW_S)
    shown = rows.public_batch(row, cancel_requested=True)
    shown["cancelling_at"] = int(now)
    return shown
