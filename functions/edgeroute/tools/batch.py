"""``edgeroute batch``: run a JSONL file on this machine, or follow a gateway's batches.

``batch run input.jsonl -o output.jsonl`` runs the batch runner (batch/jobs.py) on the
settings' store and a local copy of the file, as the development key (or ``--key-id``),
with a progress bar: lines done, rate, time left, errors. The job's id derives from the
file's path and content, so running the same command again after a crash or Ctrl-C
resumes from the checkpoint (once the dead run's lease, ``EDGEROUTE_BATCH_LEASE_S``,
has run out) and answers no line twice. The output has one line per input line, in
input order, errors included.

``batch status ID`` and ``batch list`` ask a gateway's ``/v1/batches``: ``--base-url``
(default: the stack's ``ApiUrl`` with ``--stack``, else ``http://127.0.0.1:8080``)
with ``--api-key`` (default: ``$OPENAI_API_KEY``, else the development key file).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from edgeroute.settings import Settings
from edgeroute.tools.arguments import UsageError

LOCAL_URL = "http://127.0.0.1:8080"
LEASE_POLL_S = 0.5


def _job_id(path: Path, digest: str) -> str:
    return "batch_" + hashlib.sha256(f"{path}\n{digest}".encode()).hexdigest()[:24]


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


class _Bar:
    """Lines done, rate, time left and errors, on stderr (rich)."""

    def __init__(self, total: int, quiet: bool, already: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} lines/s"),
            TimeRemainingColumn(),
            TextColumn("[red]{task.fields[errors]} errors"),
            console=Console(stderr=True),
            disable=quiet,
        )
        self.task = self.progress.add_task("lines", total=total, rate="-", errors=0)
        self.progress.update(self.task, completed=already)
        self.started = time.monotonic()
        self.already = already  # a resumed job's earlier lines are not this run's rate

    def __call__(self, row: dict[str, Any]) -> None:
        counts = row["request_counts"]
        done = counts["completed"] + counts["failed"]
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = f"{(done - self.already) / elapsed:.1f}"
        self.progress.update(
            self.task, completed=done, total=counts["total"], rate=rate, errors=counts["failed"]
        )


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from edgeroute.store import open_store
    from edgeroute.store.keys import hash_key, key_id_for
    from edgeroute.tools.devkey import dev_key, dev_key_file

    source = Path(args.input).absolute()
    if not source.is_file():
        raise UsageError(f"batch run: {args.input} is not a file; give a JSONL file to run")
    if args.key_id is None:
        store = open_store(settings)
        args.key_id = key_id_for(hash_key(dev_key(store, dev_key_file(settings))))
        asyncio.run(store.close())
    return asyncio.run(_execute(args, settings, source, _job_id(source, _digest(source))))


async def _execute(args: argparse.Namespace, settings: Settings, source: Path, job_id: str) -> int:
    from edgeroute.batch.jobs import JobRunner
    from edgeroute.pipeline.gateway import Gateway
    from edgeroute.store import batch_records as rows
    from edgeroute.store.file_storage import file_storage

    gateway = Gateway.from_settings(settings)
    files = file_storage(settings)
    data = await asyncio.to_thread(source.read_bytes)
    row = await gateway.store.get_job(job_id)
    if row is None:
        name = f"cli/{job_id}/input.jsonl"
        await files.put(name, data)
        key = await gateway.store.get_key(args.key_id)
        row = rows.batch_row(
            key.tenant if key else "",
            job_id,
            key_id=args.key_id,
            endpoint=rows.ANY_ENDPOINT,
            input_file_id=str(source),
            source={"bucket": files.bucket, "name": name},
        )
        row["output_key"] = f"cli/{job_id}/output.jsonl"  # every line, in input order
        row.pop("_owner")  # the CLI's own jobs are not listed under a tenant
    total = sum(1 for line in data.splitlines() if line.strip())
    bar = _Bar(total, args.quiet, int(row.get("checkpoint", {}).get("next", 0)))
    jobs = JobRunner(gateway, files, progress=bar)
    with bar.progress:
        while True:
            done = await jobs.run_row(row)
            if done.get("skipped") != "in progress in another invocation":
                break
            await asyncio.sleep(LEASE_POLL_S)  # a dead run's lease: wait for it to run out
            row = await gateway.store.get_job(job_id) or row
    await gateway.ledger.drain()
    if done.get("status") != "completed":
        print(f"batch {job_id} {done.get('status')}: {done.get('error')}", file=sys.stderr)
        return 1
    output = await files.get(str(done["output_key"]))
    await asyncio.to_thread(Path(args.output).write_bytes, output)
    counts = done["request_counts"]
    print(
        f"batch {job_id}: {counts['total']} lines, {counts['completed']} answered, "
        f"{counts['failed']} errors -> {args.output}",
        file=sys.stderr,
    )
    return 0


def _gateway_client(args: argparse.Namespace, settings: Settings) -> Any:
    import httpx

    base = args.base_url
    if base is None and args.stack:
        from edgeroute.tools.stack import stack_outputs

        base = stack_outputs(args.stack).get("ApiUrl")
    base = (base or LOCAL_URL).rstrip("/")
    key = args.api_key or os.environ.get("OPENAI_API_KEY")
    if key is None:
        from edgeroute.tools.devkey import dev_key_file

        path = dev_key_file(settings)
        if not path.is_file():
            raise UsageError(
                "batch: no API key: pass --api-key, set OPENAI_API_KEY, or start "
                "'edgeroute serve' once to create the development key"
            )
        key = path.read_text().strip()
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _get(args: argparse.Namespace, settings: Settings, path: str, **params: Any) -> Any:
    with _gateway_client(args, settings) as http:
        answer = http.get(path, params={k: v for k, v in params.items() if v is not None})
    body = answer.json()
    if answer.status_code != 200:
        raise UsageError(f"batch: {answer.status_code} {body['error']['message']}")
    return body


def _line(batch: dict[str, Any]) -> str:
    counts = batch.get("request_counts") or {}
    return (
        f"{batch['id']}  {batch['status']:<11} {counts.get('completed', 0)}/"
        f"{counts.get('total', 0)} done, {counts.get('failed', 0)} failed  {batch['endpoint']}"
    )


def _status(args: argparse.Namespace, settings: Settings) -> int:
    batch = _get(args, settings, f"/v1/batches/{args.id}")
    print(json.dumps(batch, indent=2) if args.json else _line(batch))
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    page = _get(args, settings, "/v1/batches", limit=args.limit, after=args.after)
    if args.json:
        print(json.dumps(page, indent=2))
    else:
        print("\n".join(_line(b) for b in page["data"]) or "no batches")
    return 0


def add_batch_parser(sub: Any) -> None:
    """The ``batch`` commands, under the main parser's ``sub``."""
    batch = sub.add_parser("batch", help="run a batch file here, or follow a gateway's batches")
    commands = batch.add_subparsers(dest="batch_command", required=True)
    run = commands.add_parser("run", help="run a JSONL batch file with the local runner")
    run.add_argument("input", help="OpenAI batch JSONL: one request object per line")
    run.add_argument("-o", "--output", required=True, help="where the result lines go")
    run.add_argument("--key-id", help="the API key id to run as (default: the development key)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)
    for name, func, text in (
        ("status", _status, "one batch of a gateway"),
        ("list", _list, "a gateway's batches, newest first"),
    ):
        command = commands.add_parser(name, help=text)
        if name == "status":
            command.add_argument("id", help="the batch id (batch_...)")
        else:
            command.add_argument("--limit", type=int, default=20)
            command.add_argument("--after", help="list the batches after this id")
        command.add_argument("--base-url", help=f"the gateway (default: {LOCAL_URL})")
        command.add_argument("--api-key", help="default: $OPENAI_API_KEY or the dev key")
        command.add_argument("--json", action="store_true")
        command.set_defaults(func=func)
