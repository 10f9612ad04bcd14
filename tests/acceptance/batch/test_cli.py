"""`edgeroute batch run` on local files: the same runner, resumable after a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edgeroute.settings import Settings
from edgeroute.store import open_store
from edgeroute.tools.batch import _digest, _job_id
from tests.acceptance.batch.helpers import _line


@pytest.fixture
def env(registry_file: Path, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "EDGEROUTE_REGISTRY": str(registry_file),
        "EDGEROUTE_SQLITE_PATH": str(tmp_path / "state" / "edgeroute.db"),
        "EDGEROUTE_STORE": "sqlite",
        "EDGEROUTE_BATCH_LEASE_S": "2",
        "EDGEROUTE_BATCH_CHUNK_LINES": "4",
        "EDGEROUTE_BATCH_CONCURRENCY": "2",
    }


def _command(source: Path, output: Path, *extra: str) -> list[str]:
    cli = [sys.executable, "-m", "edgeroute.tools.cli", "batch", "run", str(source)]
    return [*cli, "-o", str(output), *extra]


def _results(output: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in output.read_text().splitlines()]


def test_a_file_runs_to_an_output_with_a_line_per_input(
    env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([_line("a"), "{broken", _line("b", model="no-such-model")]) + "\n")
    done = subprocess.run(
        _command(source, tmp_path / "out.jsonl"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = _results(tmp_path / "out.jsonl")
    assert [o["custom_id"] for o in out] == ["a", None, "b"]
    assert "3 lines, 1 answered, 2 errors" in done.stderr
    assert "batch" in done.stderr  # the progress bar, drawn on stderr


def test_a_run_killed_mid_file_resumes_when_run_again(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "slow.jsonl"
    source.write_text("\n".join(_line(f"q{i}", model="slow") for i in range(60)) + "\n")
    output = tmp_path / "out.jsonl"
    job_id = _job_id(source.absolute(), _digest(source))
    settings = Settings(store="sqlite", sqlite_path=env["EDGEROUTE_SQLITE_PATH"])
    started = time.time()
    first = subprocess.Popen(_command(source, output, "--quiet"), env=env)
    try:
        for _ in range(600):
            row = asyncio.run(_row(settings, job_id))
            if row and row.get("checkpoint", {}).get("next", 0) >= 12:
                break
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(10)
    assert not output.exists()
    again = subprocess.run(
        _command(source, output, "--quiet"), env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    out = _results(output)
    assert [o["custom_id"] for o in out] == [f"q{i}" for i in range(60)]
    assert len({o["response"]["request_id"] for o in out}) == 60  # type: ignore[index]
    row = asyncio.run(_row(settings, job_id))
    assert row is not None and row["runs"] == 2 and row["line_check"]["balanced"]
    assert asyncio.run(_charged(settings, started)) <= 60  # no line charged twice


async def _row(settings: Settings, job_id: str) -> dict[str, Any] | None:
    store = open_store(settings)
    try:
        return await store.get_job(job_id)
    finally:
        await store.close()


async def _charged(settings: Settings, started: float) -> int:
    store = open_store(settings)
    try:
        records = await store.query_usage(started - 1, time.time() + 1)
    finally:
        await store.close()
    return sum(1 for r in records if r.status == 200)
