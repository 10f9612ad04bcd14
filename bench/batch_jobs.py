"""Batch jobs: lines per second of a chat job against an upstream with a fixed 50 ms
latency, at concurrency 1 and the default (``EDGEROUTE_BATCH_CONCURRENCY``), and of an
embeddings job at the edge, its lines grouped into batched ONNX inference or one
inference per line. In process, as ``edgeroute batch run`` runs a file: the batch
runner (batch/jobs.py) on the SQLite store and local files, checkpoints included.

``BENCH_BATCH_LINES`` sets the lines per job (default 10,000).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import yaml
from tests.support.fault_upstream import SLOW_S, FaultUpstream, fault_model
from tests.support.gateway import EDGE_MODELS

from edgeroute.batch.jobs import JobRunner
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import BatchConfig, Settings
from edgeroute.store import batch_records as rows
from edgeroute.store.file_storage import LocalFileStorage
from edgeroute.store.keys import mint_key
from edgeroute.upstreams.http import close_shared_client

LINES = int(os.environ.get("BENCH_BATCH_LINES", "10000"))
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"


def _lines(url: str) -> bytes:
    def body(i: int) -> dict[str, object]:
        if url == CHAT:
            return {"model": "slow", "messages": [{"role": "user", "content": f"q {i}"}]}
        return {"model": "use-multilingual-v3", "input": f"sentence {i} about the batch"}

    return b"".join(
        json.dumps({"custom_id": f"c{i}", "method": "POST", "url": url, "body": body(i)}).encode()
        + b"\n"
        for i in range(LINES)
    )


async def _job(folder: Path, fault_url: str, url: str, config: BatchConfig) -> dict[str, object]:
    registry = folder / "models.yaml"
    models = [fault_model("slow", fault_url, "slow"), *EDGE_MODELS]
    registry.write_text(yaml.safe_dump({"models": models}))
    settings = Settings(store="sqlite", sqlite_path=str(folder / "edgeroute.db"))
    gateway = Gateway.from_settings(settings.model_copy(update={"registry": str(registry)}))
    _, key = mint_key("bench", tenant="bench")
    await gateway.store.put_key(key)
    files = LocalFileStorage(folder / "files")
    await files.put("in.jsonl", _lines(url))
    job_id = rows.new_id("batch")
    row = rows.batch_row(
        "bench",
        job_id,
        key_id=key.key_id,
        endpoint=url,
        input_file_id=None,
        source={"bucket": None, "name": "in.jsonl"},
    )
    await gateway.store.put_job(job_id, row)
    started = time.perf_counter()
    done = await JobRunner(gateway, files, config=config).run(job_id)
    elapsed = time.perf_counter() - started
    await gateway.ledger.drain()
    await close_shared_client()
    assert done["status"] == "completed" and done["line_check"]["balanced"], done
    return {
        "lines": LINES,
        "seconds": round(elapsed, 1),
        "lines_per_s": round(LINES / elapsed, 1),
        "failed": done["request_counts"]["failed"],
    }


def measure() -> dict[str, dict[str, object]]:
    default = BatchConfig()
    cases = {
        "chat_50ms_concurrency_1": (CHAT, BatchConfig(concurrency=1)),
        f"chat_50ms_concurrency_{default.concurrency}": (CHAT, default),
        "edge_embeddings_grouped": (EMBEDDINGS, default),
        "edge_embeddings_one_per_line": (
            EMBEDDINGS,
            default.model_copy(update={"group_embeddings": False}),
        ),
    }
    results = {}
    with FaultUpstream() as upstream:
        for name, (url, config) in cases.items():
            with tempfile.TemporaryDirectory() as folder:
                results[name] = asyncio.run(_job(Path(folder), upstream.url, url, config))
    return results


def main() -> None:
    logging.getLogger("edgeroute.audit").setLevel(logging.WARNING)  # a record per line
    print(json.dumps({"upstream_latency_s": SLOW_S, **measure()}, indent=2))


if __name__ == "__main__":
    main()
