"""The batch runner against moto's S3 and DynamoDB servers, with real upstreams: the
fault-injecting server's models and llama.cpp's server."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from edgeroute.batch.runner import BatchRunner, job_id_for, s3_objects
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import BatchConfig
from edgeroute.store.base import KeyPolicy
from edgeroute.store.keys import mint_key
from tests.acceptance.batch.helpers import CHAT, _event, _line, _output, _upload


async def test_a_file_runs_line_by_line_in_order(
    runner: BatchRunner, s3: Any, bucket: str, key_id: str, batch_gateway: Gateway
) -> None:
    lines = [_line(f"q{i}", seed=i) for i in range(6)]
    lines.append(_line("real", model="small", max_tokens=8))  # llama.cpp, for real
    lines.append(
        json.dumps(
            {
                "custom_id": "emb",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "instant", "input": "hello"},
            }
        )
    )
    _upload(s3, bucket, "batch/in/team/run 1.jsonl", lines, key_id)
    started = time.time()
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/run 1.jsonl"))

    assert job["status"] == "completed", job
    assert job["output_key"] == "batch/out/team/run 1.jsonl"
    assert job["request_counts"] == {"total": 8, "completed": 8, "failed": 0}
    out = _output(s3, bucket, job["output_key"])
    assert [o["custom_id"] for o in out] == [f"q{i}" for i in range(6)] + ["real", "emb"]
    for item in out:
        assert item["id"].startswith("batch_req_") and item["error"] is None
        assert item["response"]["status_code"] == 200
        assert item["response"]["request_id"].startswith("req_")
    assert out[6]["response"]["body"]["choices"][0]["message"]["content"]
    assert out[7]["response"]["body"]["object"] == "list"
    stored = await batch_gateway.store.get_job(job["job_id"])
    assert stored is not None and stored["status"] == "completed"
    # Every line is in the usage ledger under the job's key, like an HTTP request.
    records = await batch_gateway.store.query_usage(started - 1, time.time() + 1)
    request_ids = {o["response"]["request_id"] for o in out}
    assert request_ids <= {r.request_id for r in records}


async def test_bad_lines_become_error_lines_and_none_is_lost(
    runner: BatchRunner, s3: Any, bucket: str, key_id: str
) -> None:
    lines = [
        _line("ok-1"),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"method": "POST", "url": CHAT, "body": {}}),
        json.dumps({"custom_id": "get", "method": "GET", "url": CHAT, "body": {}}),
        json.dumps({"custom_id": "url", "method": "POST", "url": "/v1/images", "body": {}}),
        json.dumps({"custom_id": "nobody", "method": "POST", "url": CHAT, "body": "text"}),
        json.dumps({"custom_id": "schema", "method": "POST", "url": CHAT, "body": {"model": "x"}}),
        _line("unknown-model", model="no-such-model"),
        _line("upstream-500", model="broken"),
        _line("ok-1"),  # a duplicate custom_id
        "   ",  # blank: not a request, not a line to answer
        _line("ok-2", stream=True),  # streaming is ignored in a batch
    ]
    _upload(s3, bucket, "batch/in/team/bad.jsonl", lines, key_id)
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/bad.jsonl"))

    assert job["status"] == "completed"
    out = _output(s3, bucket, "batch/out/team/bad.jsonl")
    assert len(out) == 12 and job["request_counts"] == {"total": 12, "completed": 2, "failed": 10}
    by_position = [
        (o["custom_id"], (o["error"] or {}).get("code"), (o["response"] or {}).get("status_code"))
        for o in out
    ]
    assert by_position == [
        ("ok-1", None, 200),
        (None, "invalid_json", None),
        (None, "invalid_request", None),
        (None, "missing_custom_id", None),
        ("get", "invalid_method", None),
        ("url", "invalid_url", None),
        ("nobody", "invalid_body", None),
        ("schema", None, 400),
        ("unknown-model", None, 404),
        ("upstream-500", None, 502),
        ("ok-1", "duplicate_custom_id", None),
        ("ok-2", None, 200),
    ]
    assert "line 2" in out[1]["error"]["message"]
    assert out[7]["response"]["body"]["error"]["param"] == "messages"


async def test_redelivery_does_not_run_a_job_twice(
    runner: BatchRunner, s3: Any, bucket: str, key_id: str, batch_gateway: Gateway
) -> None:
    _upload(s3, bucket, "batch/in/team/once.jsonl", [_line("a"), _line("b")], key_id)
    event = _event(bucket, "batch/in/team/once.jsonl")
    [first] = await runner.handle_event(event)
    written = s3.head_object(Bucket=bucket, Key="batch/out/team/once.jsonl")
    [again] = await runner.handle_event(event)

    assert first["status"] == "completed" and again["skipped"] == "already processed"
    assert again["job_id"] == first["job_id"]
    after = s3.head_object(Bucket=bucket, Key="batch/out/team/once.jsonl")
    assert after["LastModified"] == written["LastModified"]
    # A new upload under the same name is new content: a new job.
    _upload(s3, bucket, "batch/in/team/once.jsonl", [_line("c")], key_id)
    [fresh] = await runner.handle_event(event)
    assert fresh["status"] == "completed" and fresh["job_id"] != first["job_id"]


async def test_a_job_leased_by_another_invocation_is_left_alone(
    runner: BatchRunner, s3: Any, bucket: str, key_id: str, batch_gateway: Gateway
) -> None:
    _upload(s3, bucket, "batch/in/team/busy.jsonl", [_line("a")], key_id)
    etag = s3.head_object(Bucket=bucket, Key="batch/in/team/busy.jsonl")["ETag"].strip('"')
    job_id = job_id_for(bucket, "batch/in/team/busy.jsonl", etag)
    await batch_gateway.store.put_job(
        job_id, {"job_id": job_id, "status": "in_progress", "lease_until": time.time() + 60}
    )
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/busy.jsonl"))
    assert job["skipped"] == "in progress in another invocation"
    # An expired lease means the other invocation died: take the job over.
    await batch_gateway.store.put_job(
        job_id, {"job_id": job_id, "status": "in_progress", "lease_until": time.time() - 1}
    )
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/busy.jsonl"))
    assert job["status"] == "completed"


async def test_a_job_without_a_usable_key_answers_every_line_with_the_reason(
    runner: BatchRunner, s3: Any, bucket: str, revoked_key_id: str
) -> None:
    lines = [_line("a"), "{broken", _line("b")]
    cases = {
        "batch/in/team/nokey.jsonl": (None, "no x-amz-meta-edgeroute-key-id"),
        "batch/in/team/unknown.jsonl": ("key_0000000000000000", "does not exist"),
        "batch/in/team/revoked.jsonl": (revoked_key_id, "was revoked"),
    }
    for key, (key_id, reason) in cases.items():
        _upload(s3, bucket, key, lines, key_id)
        [job] = await runner.handle_event(_event(bucket, key))
        assert job["status"] == "failed" and reason in job["error"], job
        out = _output(s3, bucket, job["output_key"])
        assert [o["custom_id"] for o in out] == ["a", None, "b"]
        assert {o["error"]["code"] for o in out} == {"invalid_api_key"}
        assert all(o["response"] is None for o in out)


async def test_an_oversized_file_fails_the_job_with_a_reason(
    batch_gateway: Gateway, s3: Any, bucket: str, key_id: str
) -> None:
    small = BatchRunner(batch_gateway, s3, BatchConfig(max_bytes=64))
    _upload(s3, bucket, "batch/in/team/big.jsonl", [_line("a"), _line("b")], key_id)
    [job] = await small.handle_event(_event(bucket, "batch/in/team/big.jsonl"))
    assert job["status"] == "failed" and "EDGEROUTE_BATCH_MAX_BYTES" in job["error"]


async def test_events_that_are_not_batch_uploads_are_skipped(
    runner: BatchRunner, s3: Any, bucket: str, key_id: str
) -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}
    assert await runner.handle_event(test_event) == []
    assert (
        await runner.handle_event(_event(bucket, "batch/in/team/x.jsonl", "ObjectRemoved:Delete"))
        == []
    )
    _upload(s3, bucket, "other/x.jsonl", [_line("a")], key_id)
    [skipped] = await runner.handle_event(_event(bucket, "other/x.jsonl"))
    assert "not a batch/in/" in skipped["skipped"]


def test_s3_keys_are_url_decoded() -> None:
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "b"},
                    "object": {"key": "batch%2Fin%2Fmy+file%2B1.jsonl"},
                },
            }
        ]
    }
    assert s3_objects(event) == [("b", "batch/in/my file+1.jsonl")]


async def test_the_genuine_s3_notification_through_sqs(
    runner: BatchRunner, s3: Any, bucket: str, key_id: str, batch_env: dict[str, str]
) -> None:
    """moto cannot call Lambda, but it delivers S3's real notification to SQS: the same
    record Lambda would get, test event first, key URL-encoded."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=batch_env["AWS_ENDPOINT_URL_S3"])
    queue = sqs.create_queue(QueueName=f"batch-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": "batch/in/team/"},
                                {"Name": "suffix", "Value": ".jsonl"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    _upload(s3, bucket, "batch/in/team/from sqs+1.jsonl", [_line("a")], key_id)
    events = []
    for _ in range(10):
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        events += [json.loads(m["Body"]) for m in got.get("Messages", [])]
        if any("Records" in e for e in events):
            break
    results = [job for event in events for job in await runner.handle_event(event)]
    assert [job["input_key"] for job in results] == ["batch/in/team/from sqs+1.jsonl"]
    assert results[0]["status"] == "completed"


async def test_two_deliveries_at_once_run_the_job_once(
    runner: BatchRunner, s3: Any, bucket: str, key_id: str
) -> None:
    _upload(s3, bucket, "batch/in/team/twice.jsonl", [_line("a"), _line("b")], key_id)
    event = _event(bucket, "batch/in/team/twice.jsonl")
    first, second = await asyncio.gather(runner.handle_event(event), runner.handle_event(event))
    outcomes = sorted([first[0].get("skipped", "ran"), second[0].get("skipped", "ran")])
    assert outcomes == ["in progress in another invocation", "ran"]


async def test_a_key_can_only_run_files_under_its_tenant(
    runner: BatchRunner, s3: Any, bucket: str, key_id: str, batch_gateway: Gateway
) -> None:
    _upload(s3, bucket, "batch/in/other-team/x.jsonl", [_line("a")], key_id)
    [job] = await runner.handle_event(_event(bucket, "batch/in/other-team/x.jsonl"))
    assert job["status"] == "failed" and "batch/in/team/" in job["error"]
    _, admin = mint_key("ops", tenant="team", admin=True)
    await batch_gateway.store.put_key(admin)
    _upload(s3, bucket, "batch/in/team/admin.jsonl", [_line("a")], admin.key_id)
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/admin.jsonl"))
    assert job["status"] == "failed" and "admin" in job["error"]


async def test_a_scoped_key_runs_only_the_lines_its_scopes_name(
    runner: BatchRunner, s3: Any, bucket: str, batch_gateway: Gateway
) -> None:
    _, scoped = mint_key("embedder", tenant="team", policy=KeyPolicy(scopes=("embeddings",)))
    await batch_gateway.store.put_key(scoped)
    embed = {"custom_id": "emb", "method": "POST", "url": "/v1/embeddings"}
    lines = [_line("chat"), json.dumps({**embed, "body": {"model": "instant", "input": "hi"}})]
    _upload(s3, bucket, "batch/in/team/scoped.jsonl", lines, scoped.key_id)
    [job] = await runner.handle_event(_event(bucket, "batch/in/team/scoped.jsonl"))
    assert job["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    chat, emb = _output(s3, bucket, job["output_key"])
    assert chat["response"]["status_code"] == 403
    error = chat["response"]["body"]["error"]
    assert error["code"] == "insufficient_scope" and "'chat' scope" in error["message"]
    assert emb["response"]["status_code"] == 200
