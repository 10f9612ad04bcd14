"""Jobs that outlive one invocation, against moto's S3 and DynamoDB servers: a run whose
time budget ends hands the rest on, a run that dies is resumed from its checkpoint,
and either way every line is answered (and charged) exactly once. An S3-triggered job
is listed in its tenant's ``GET /v1/batches``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx

from edgeroute.api.app import create_app
from edgeroute.batch.runner import BatchRunner, job_id_for
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import BatchConfig
from edgeroute.store.keys import mint_key
from tests.acceptance.batch.helpers import _event, _line, _output, _upload


def _resume(job_id: str) -> dict[str, Any]:
    """The resume queue's message as Lambda delivers it from SQS."""
    return {"Records": [{"eventSource": "aws:sqs", "body": json.dumps({"batch_id": job_id})}]}


async def _charged(gateway: Gateway, started: float, key_id: str) -> int:
    """Answers charged to ``key_id`` since ``started``."""
    records = await gateway.store.query_usage(started - 1, time.time() + 1)
    # A request cut off by the dying run is recorded as a 500 that costs nothing.
    return sum(1 for r in records if r.key_id == key_id and r.status == 200)


def _check_once(out: list[dict[str, Any]], count: int) -> None:
    assert [o["custom_id"] for o in out] == [f"q{i}" for i in range(count)]
    assert len({o["response"]["request_id"] for o in out}) == count


async def test_a_job_hands_over_when_its_time_budget_ends(
    batch_gateway: Gateway, s3: Any, bucket: str, key_id: str
) -> None:
    handed: list[str] = []

    async def handover(job_id: str) -> None:
        handed.append(job_id)

    runner = BatchRunner(
        batch_gateway, s3, BatchConfig(chunk_lines=5, concurrency=4), handover=handover
    )
    _upload(s3, bucket, "batch/in/team/long.jsonl", [_line(f"q{i}") for i in range(23)], key_id)
    started = time.time()
    # A budget already spent: each run does one chunk, then passes the job on.
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/long.jsonl"), time.monotonic())
    assert job["status"] == "in_progress" and job["request_counts"]["completed"] == 5
    # The same upload delivered again meanwhile continues the job; it does not restart it.
    [again] = await runner.handle_event(_event(bucket, "batch/in/team/long.jsonl"), 0.0)
    assert again["checkpoint"]["next"] == 10
    while handed:
        for done in await runner.handle_event(_resume(handed.pop()), time.monotonic()):
            job = done
    assert job["status"] == "completed" and job["runs"] == 5
    assert job["line_check"] == {"input": 23, "run": 23, "output": 23, "error": 0, "balanced": True}
    out = _output(s3, bucket, job["output_key"])
    _check_once(out, 23)
    assert await _charged(batch_gateway, started, key_id) == 23
    # Parts are joined and gone; a late resume message runs nothing.
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="batch/parts/")
    [late] = await runner.handle_event(_resume(job["job_id"]))
    assert late["skipped"] == "already processed"


async def test_a_run_that_dies_is_resumed_from_its_checkpoint(
    batch_gateway: Gateway, s3: Any, bucket: str, key_id: str
) -> None:
    config = BatchConfig(chunk_lines=4, concurrency=2, lease_s=60)
    runner = BatchRunner(batch_gateway, s3, config)
    lines = [_line(f"q{i}", model="slow") for i in range(30)]
    _upload(s3, bucket, "batch/in/team/dies.jsonl", lines, key_id)
    etag = s3.head_object(Bucket=bucket, Key="batch/in/team/dies.jsonl")["ETag"].strip('"')
    job_id = job_id_for(bucket, "batch/in/team/dies.jsonl", etag)
    started = time.time()
    run = asyncio.create_task(runner.handle_event(_event(bucket, "batch/in/team/dies.jsonl")))
    for _ in range(1000):  # until two chunks are checkpointed and the third has begun
        seen = await batch_gateway.store.get_job(job_id) or {}
        done = seen.get("checkpoint", {}).get("next", 0)
        if done >= 8 and await batch_gateway.store.get_job(f"{job_id}#line#{done}"):
            break
        await asyncio.sleep(0.005)
    run.cancel()  # the invocation dies mid-chunk, its lease still held
    await asyncio.gather(run, return_exceptions=True)
    row = await batch_gateway.store.get_job(job_id)
    assert row is not None and row["status"] == "in_progress"
    [busy] = await runner.handle_event(_event(bucket, "batch/in/team/dies.jsonl"))
    assert busy["skipped"] == "in progress in another invocation"
    # Its lease runs out: the next delivery takes the job over at the checkpoint.
    await batch_gateway.store.put_job(job_id, {**row, "lease_until": time.time() - 1})
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/dies.jsonl"))
    assert job["status"] == "completed" and job["runs"] == 2
    out = _output(s3, bucket, job["output_key"])
    _check_once(out, 30)
    # Lines the dead run had answered in its last chunk are not asked (or charged) again.
    assert await _charged(batch_gateway, started, key_id) == 30


async def test_an_uploaded_job_is_listed_for_its_tenant(
    batch_gateway: Gateway, s3: Any, bucket: str, key_id: str, runner: BatchRunner
) -> None:
    _upload(s3, bucket, "batch/in/team/listed.jsonl", [_line("a"), "{bad"], key_id)
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/listed.jsonl"))
    secret, record = mint_key(f"reader-{uuid.uuid4().hex[:6]}", tenant="team")
    await batch_gateway.store.put_key(record)
    other_secret, other = mint_key(f"other-{uuid.uuid4().hex[:6]}", tenant="other")
    await batch_gateway.store.put_key(other)
    transport = httpx.ASGITransport(app=create_app(batch_gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        mine = await http.get("/v1/batches", headers={"Authorization": f"Bearer {secret}"})
        listed = {b["id"]: b for b in mine.json()["data"]}
        assert listed[job["job_id"]]["status"] == "completed"
        assert listed[job["job_id"]]["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
        output = listed[job["job_id"]]["output_file_id"]
        content = await http.get(
            f"/v1/files/{output}/content", headers={"Authorization": f"Bearer {secret}"}
        )
        assert [json.loads(x)["custom_id"] for x in content.text.splitlines()] == ["a", None]
        theirs = await http.get(
            f"/v1/batches/{job['job_id']}", headers={"Authorization": f"Bearer {other_secret}"}
        )
        assert theirs.status_code == 404


async def test_abandoned_jobs_are_the_active_ones_whose_lease_ran_out(
    batch_gateway: Gateway,
) -> None:
    store = batch_gateway.store
    now = time.time()
    tag = uuid.uuid4().hex[:8]
    rows: dict[str, dict[str, Any]] = {
        f"batch_{tag}run": {"status": "in_progress", "lease_until": now - 1},
        f"batch_{tag}new": {"status": "validating", "lease_until": 0.0},
        f"batch_{tag}held": {"status": "in_progress", "lease_until": now + 60},
        f"batch_{tag}done": {"status": "completed", "lease_until": 0.0},
        f"batch_{tag}run#line#0": {"line": {}},
    }
    for job_id, row in rows.items():
        await store.put_job(job_id, {"job_id": job_id, **row}, expires_at=now + 600)
    found = {r["job_id"] for r in await store.abandoned_jobs(now)}
    assert {j for j in found if tag in j} == {f"batch_{tag}run", f"batch_{tag}new"}
