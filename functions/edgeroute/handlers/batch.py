"""S3 ObjectCreated on ``batch/in/*.jsonl`` -> the batch runner (see batch/runner.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from edgeroute.batch.runner import BatchRunner
from edgeroute.observe import logs, tracing
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings
from edgeroute.store.s3 import make_s3_client

logs.configure()  # JSON logs on Lambda
tracing.configure_lambda()  # X-Ray subsegments, unless POWERTOOLS_TRACE_DISABLED

# The runner takes its concurrency, size limit and lease from the gateway's settings.
_runner = BatchRunner(Gateway.from_settings(Settings.from_env()), make_s3_client())
_loop = asyncio.new_event_loop()  # kept, so upstream and store connections stay warm


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logs.begin(correlation_id=logs.correlation_id(event))  # the S3 request that wrote it
    return {"jobs": _loop.run_until_complete(_runner.handle_event(event))}
