"""The completion window: a batch not finished by ``expires_at`` (here a 2 s window,
``EDGEROUTE_BATCH_WINDOW_S``) ends ``expired`` as OpenAI's do: the lines it did not run
are in the error file with code ``batch_expired``, and every input line is in exactly
one of the two files, as ``request_counts`` says."""

from __future__ import annotations

import time
from pathlib import Path

import openai

from tests.acceptance.batch.helpers import serve_env
from tests.acceptance.batch.test_batches_api import CHAT, line, results, upload, wait
from tests.support.gateway import GatewayProcess


def test_a_batch_past_its_window_expires_with_the_rest_as_errors(
    registry_file: Path, tmp_path: Path
) -> None:
    env = serve_env(registry_file, tmp_path, window_s=2, chunk_lines=4, concurrency=2)
    with GatewayProcess(env, tmp_path) as served:
        key = served.create_key("expiring", "--tenant", "team")
        client = openai.OpenAI(
            base_url=served.url + "/v1", api_key=str(key["api_key"]), max_retries=0
        )
        lines = [line(f"q{i}", model="slow") for i in range(200)]  # 50 ms each, 2 at a time
        lines.insert(0, "{not json")  # run before the window ends: its own error stays
        batch = client.batches.create(
            input_file_id=upload(client, lines), endpoint=CHAT, completion_window="24h"
        )
        assert batch.expires_at == batch.created_at + 2
        done = wait(client, batch.id, timeout_s=60)
        assert done.status == "expired", done
        assert done.expired_at and done.expired_at >= batch.expires_at
        assert done.completed_at is None
        out = results(client, done.output_file_id)
        errors = results(client, done.error_file_id)
    counts = done.request_counts
    assert counts is not None and counts.total == 201
    assert 0 < counts.completed == len(out) < 200
    assert counts.failed == len(errors) == counts.total - counts.completed
    expired = [e for e in errors if e["error"] and e["error"]["code"] == "batch_expired"]
    assert len(expired) == len(errors) - 1
    assert all(
        e["response"] is None and "completion window" in e["error"]["message"] for e in expired
    )
    seen = [o["custom_id"] for o in out] + [e["custom_id"] for e in expired]
    assert sorted(seen) == sorted(f"q{i}" for i in range(200))
    assert time.time() < done.expired_at + 60
