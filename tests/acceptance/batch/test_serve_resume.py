"""A batch created over the SDK on `edgeroute serve` outlives the process: killed
(SIGKILL) mid-job, the next `edgeroute serve` on the same store and files folder
resumes it from its checkpoint once the lease runs out, and every line is answered,
and charged, once; stopped gracefully, the process releases the job, so the next one
resumes it at once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import openai
from openai.types import Batch

from edgeroute.settings import Settings
from edgeroute.store import open_store
from tests.acceptance.batch.helpers import serve_env
from tests.acceptance.batch.test_batches_api import CHAT, line, results, upload, wait
from tests.support.gateway import GatewayProcess


async def _charges(settings: Settings, started: float, key_id: str) -> Counter[str]:
    """Answered requests of ``key_id`` since ``started``, by request id."""
    store = open_store(settings)
    try:
        records = await store.query_usage(started - 1, time.time() + 1)
    finally:
        await store.close()
    return Counter(r.request_id for r in records if r.key_id == key_id and r.status == 200)


def _batch_under_way(
    gateway: GatewayProcess, lines: int, answered: int
) -> tuple[dict[str, object], openai.OpenAI, Batch]:
    """A tenant's key and client, and a batch of ``lines`` slow lines of which at least
    ``answered`` are done."""
    key = gateway.create_key("resumer", "--tenant", "team")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=str(key["api_key"]), max_retries=0)
    file_id = upload(client, [line(f"q{i}", model="slow") for i in range(lines)])
    batch = client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    while client.batches.retrieve(batch.id).request_counts.completed < answered:  # type: ignore[union-attr]
        time.sleep(0.05)
    return key, client, batch


def test_a_restarted_serve_resumes_the_batch_it_left_running(
    registry_file: Path, tmp_path: Path
) -> None:
    env = serve_env(registry_file, tmp_path, lease_s=2, chunk_lines=4, concurrency=2)
    first = GatewayProcess(env, tmp_path).start()
    started = time.time()
    try:
        key, client, batch = _batch_under_way(first, lines=60, answered=12)
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGKILL)  # no shutdown: the lease stays held
        first.proc.wait(10)
    finally:
        first.stop()
    second = GatewayProcess(env, tmp_path).start()
    try:
        again = client.with_options(base_url=second.url + "/v1")
        done = wait(again, batch.id, timeout_s=120)
        assert done.status == "completed", done
        counts = done.request_counts
        assert counts is not None
        assert (counts.total, counts.completed, counts.failed) == (60, 60, 0)
        assert done.error_file_id is None
        out = results(again, done.output_file_id)
    finally:
        second.stop()
    assert sorted(o["custom_id"] for o in out) == sorted(f"q{i}" for i in range(60))
    answered = [o["response"]["request_id"] for o in out]
    assert len(set(answered)) == 60
    settings = Settings(store="sqlite", sqlite_path=env["EDGEROUTE_SQLITE_PATH"])
    charged = asyncio.run(_charges(settings, started, str(key["key_id"])))
    assert all(charged[request_id] == 1 for request_id in answered)
    assert sum(charged.values()) == 60  # a line cut off by the kill was never charged


def test_a_gracefully_stopped_serve_releases_its_batch_at_once(
    registry_file: Path, tmp_path: Path
) -> None:
    # A lease far longer than the test may wait: only a released job resumes in time.
    env = serve_env(registry_file, tmp_path, lease_s=900, chunk_lines=4, concurrency=2)
    first = GatewayProcess(env, tmp_path).start()
    try:
        _, client, batch = _batch_under_way(first, lines=40, answered=8)
    finally:
        first.stop()  # SIGTERM: the app's lifespan stops the worker
    second = GatewayProcess(env, tmp_path).start()
    try:
        again = client.with_options(base_url=second.url + "/v1")
        done = wait(again, batch.id, timeout_s=90)
        assert done.status == "completed", done
        out = results(again, done.output_file_id)
    finally:
        second.stop()
    assert sorted(o["custom_id"] for o in out) == sorted(f"q{i}" for i in range(40))
