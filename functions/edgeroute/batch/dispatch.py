"""How a batch job is started and handed on: a task in this process (``edgeroute
serve``), or a message on the resume queue that the batch function reads (AWS).

Either way a job id is all that travels; the job's row holds everything else, and a
run claims the job before touching it, so a message delivered twice runs nothing twice.

A local worker also sweeps the store (at start, then every lease or 30 s) for jobs whose
lease ran out: a ``serve`` killed mid-job leaves its jobs leased, and the next one on
the same store resumes them from their checkpoints. On AWS the resume queue redelivers
what a failed invocation dropped, so its ``start`` and ``stop`` do nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from edgeroute.batch.jobs import JobRunner
from edgeroute.batch.runner import RESUME_FIELD
from edgeroute.pipeline.periodic import Periodic


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

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class LocalWorker:
    """Runs jobs as asyncio tasks of the running loop; a run whose budget
    (``EDGEROUTE_BATCH_TIME_BUDGET_S``, 0: none) ends hands over to a new task."""

    def __init__(self, jobs: JobRunner) -> None:
        self.jobs = jobs
        jobs.handover = self
        self.tasks: dict[str, asyncio.Task[Any]] = {}  # by job id: one run per job here
        self.stopping = False
        every_s = min(jobs.config.lease_s, 30.0)
        self._sweeper = Periodic(self.sweep, every_s, "looking for batch jobs to resume")

    async def __call__(self, job_id: str) -> None:
        self._submit(job_id)

    def _submit(self, job_id: str) -> None:
        if self.stopping:
            return
        running = self.tasks.get(job_id)
        if running is not None and not running.done():
            # A hand-over from the run itself: the new run starts once this one returns.
            running.add_done_callback(lambda _: self._submit(job_id))
            return
        budget = self.jobs.config.time_budget_s
        deadline = time.monotonic() + budget if budget else None
        task = asyncio.get_running_loop().create_task(self.jobs.run(job_id, deadline))
        self.tasks[job_id] = task
        task.add_done_callback(lambda done: self._forget(job_id, done))

    def _forget(self, job_id: str, task: asyncio.Task[Any]) -> None:
        if self.tasks.get(job_id) is task:
            del self.tasks[job_id]

    async def sweep(self) -> int:
        """Start every job whose lease ran out and that no task here runs; how many."""
        found = 0
        for row in await self.jobs.store.abandoned_jobs(time.time()):
            job_id = str(row["job_id"])
            if job_id not in self.tasks:
                self._submit(job_id)
                found += 1
        return found

    def start(self) -> None:
        """Resume what the store holds (now, then every lease or 30 s)."""
        self._sweeper.start()

    async def stop(self) -> None:
        """Stop sweeping and running, and release the jobs this process ran, so the next
        process resumes them at once (a killed one's leases run out instead)."""
        self.stopping = True
        await self._sweeper.stop()
        running = list(self.tasks)
        for task in list(self.tasks.values()):
            task.cancel()
        await self.idle()
        await self.jobs.release(running)

    async def idle(self) -> None:
        """Wait until no job is running (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)
