"""moto's server mode as a real DynamoDB-protocol endpoint for the contract tests.

It runs as a subprocess on a port it picks itself (``-p 0``); we read the port from
its log line, wait until it answers, reset its state between tests over its admin
API, and terminate (then kill) it at the end. No in-process mocking: boto3 talks
HTTP to it exactly as it would to DynamoDB.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support.served import Served

# Dummy credentials: botocore signs requests and needs some; moto accepts any.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

_RUNNING = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")

# moto's UpdateItem reads, checks the condition and writes without a lock, so two
# concurrent requests can both pass `#v <= :max` (measured: 52 of 200 admitted against
# a limit of 50 with 32 requests in flight). DynamoDB makes every single-item write
# atomic, and the quota design relies on exactly that; so by default the server runs
# `moto_server` (same CLI, same log line) with its WSGI app behind one lock: requests
# still arrive concurrently on their own connections, and are applied one at a time.
_ATOMIC_MOTO = """
import sys, threading
import moto.server as server

_lock = threading.Lock()

class _OneAtATime(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        with _lock:
            return list(super().__call__(environ, start_response))

server.DomainDispatcherApplication = _OneAtATime
server.main(sys.argv[1:])
"""


class MotoServer(Served):
    def __init__(self, start_timeout: float = 30.0, atomic: bool = True) -> None:
        """``atomic=False`` runs plain ``moto_server`` (racy conditional updates)."""
        self.start_timeout = start_timeout
        self.atomic = atomic
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        # The log goes to a file, not a pipe: moto logs every request, and a pipe
        # nobody drains would fill up and stall the server mid-test.
        self._log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])

    def start(self) -> MotoServer:
        env = {**os.environ, **AWS_ENV}
        launcher = ["-c", _ATOMIC_MOTO] if self.atomic else ["-m", "moto.server"]
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, *launcher, "-H", "127.0.0.1", "-p", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + self.start_timeout
        while not self.url:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited early:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto_server did not start:\n{self.log_text()}")
            match = _RUNNING.search(self.log_text())
            if match:
                self.url = match.group(1)
            else:
                time.sleep(0.05)
        self._wait_ready(deadline)
        return self

    def _wait_ready(self, deadline: float) -> None:
        while True:
            try:
                self.reset()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def reset(self) -> None:
        """Forget every table and item (moto's admin API)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def log_text(self) -> str:
        return self._log.read_text(errors="replace")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._log.unlink(missing_ok=True)
