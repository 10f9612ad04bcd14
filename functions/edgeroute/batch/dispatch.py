"""How a batch job is started and handed on: a task in this process (``edgeroute
serve``), or a message on the resume queue that the batch function reads (AWS).

Either way a job id is all that travels; the job's row holds everything else, and a
run claims the job before touching it, so a message delivered twice runs nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from edgeroute.batch.jobs import JobRunner
from edgeroute.batch.runner import RESUME_FIELD


class QueueDispatch:
    """Send a job id to the resume queue (``EDGEROUTE_BATCH_RESUME_QUEUE_URL``)."""

    def __init__(self, queue_url: str, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    async def __call__(self, job_id: str) -> None:
        if self._sqs is None:
            import boto3  # imported here: only what queues pays for boto3

            self._sqs = boto3.client("sqs")
        body = json.dumps({RESUME_FIELD: job_id})
        await asyncio.to_thread(self._sqs.send_message, QueueUrl=self.queue_url, MessageBody=body)


class LocalWorker:
    """Runs jobs as asyncio tasks of the running loop; a run whose budget
    (``EDGEROUTE_BATCH_TIME_BUDGET_S``, 0: none) ends hands over to a new task."""

    def __init__(self, jobs: JobRunner) -> None:
        self.jobs = jobs
        jobs.handover = self
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, job_id: str) -> None:
        budget = self.jobs.config.time_budget_s
        deadline = time.monotonic() + budget if budget else None
        task = asyncio.get_running_loop().create_task(self.jobs.run(job_id, deadline))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def idle(self) -> None:
        """Wait until no job is running (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
