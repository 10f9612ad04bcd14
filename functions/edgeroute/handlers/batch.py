"""The batch function: S3 ObjectCreated on ``batch/in/*.jsonl`` and the resume queue's
messages -> the batch runner (see batch/runner.py and batch/jobs.py).

A run stops ``EDGEROUTE_BATCH_MARGIN_S`` before the invocation's time runs out (or
after ``EDGEROUTE_BATCH_TIME_BUDGET_S``, when set) and hands the rest of its job on
through the resume queue.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from edgeroute.batch.dispatch import QueueDispatch
from edgeroute.batch.runner import BatchRunner
from edgeroute.observe import logs, tracing
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings
from edgeroute.store.s3 import make_s3_client

logs.configure()  # JSON logs on Lambda
tracing.configure_lambda()  # X-Ray subsegments, unless POWERTOOLS_TRACE_DISABLED

_settings = Settings.from_env()
_queue = _settings.batch.resume_queue_url
# The runner takes its concurrency, size limit and lease from the gateway's settings.
_runner = BatchRunner(
    Gateway.from_settings(_settings),
    make_s3_client(),
    handover=QueueDispatch(_queue) if _queue else None,
)
_loop = asyncio.new_event_loop()  # kept, so upstream and store connections stay warm


def deadline(context: Any, started: float) -> float | None:
    """When this invocation's runs must hand over (``time.monotonic()``)."""
    config = _settings.batch
    ends = []
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is not None:
        ends.append(started + remaining() / 1000 - config.margin_s)
    if config.time_budget_s:
        ends.append(started + config.time_budget_s)
    return min(ends) if ends else None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logs.begin(correlation_id=logs.correlation_id(event))  # the S3 request that wrote it
    ends = deadline(context, time.monotonic())
    return {"jobs": _loop.run_until_complete(_runner.handle_event(event, ends))}
