"""Invoke a Lambda handler through the real ``awslambdaric``, cold or warm, without Docker."""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

from edgeroute.tools.localinvoke.emulator import (
    Dispatched,
    Invocation,
    Polled,
    Posted,
    RuntimeApiEmulator,
    RuntimeEvent,
    new_request_id,
)
from edgeroute.tools.localinvoke.process import (
    Exited,
    RuntimeProcess,
    describe_exit,
    lambda_environment,
)

# Lambda rejects a synchronous request payload above this before any code runs.
MAX_REQUEST_BYTES = 6 * 1024 * 1024
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class InvocationResult:
    """What Lambda's Invoke API would report, plus local timings.

    ``payload`` is the decoded response, or the error object when ``function_error``
    is set ("Unhandled", as Lambda sets the X-Amz-Function-Error header).
    """

    payload: Any
    function_error: str | None
    error: dict[str, Any] | None
    init_ms: float
    duration_ms: float
    logs: str
    request_id: str = ""
    cold: bool = False
    max_memory_mb: int | None = None
    raw_payload: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.function_error is None


class FunctionOptions(TypedDict, total=False):
    """How ``LocalFunction`` and ``invoke`` run a function; any option may be left out
    (its default in brackets)."""

    env: Mapping[str, str] | None  # the function's environment variables (none)
    timeout_s: float  # the invocation timeout (30)
    function_name: str  # ("edgeroute-local")
    memory_mb: int  # Lambda's memory size, as the function and REPORT see it (512)
    region: str | None  # (the environment's AWS_REGION, else us-east-1)
    init_timeout_s: float  # for the handler's import and init (10)
    python: str | None  # the interpreter that runs the runtime client (this one)
    inherit_env: bool  # pass this process's environment through too (False)


class LocalFunction:
    """One execution environment: started on first use, reused while warm.

    Like Lambda, an environment whose invocation timed out, crashed or failed to
    initialise is discarded; the next ``invoke`` starts a fresh (cold) one.
    Invocations are serialised: an environment runs one event at a time.
    """

    def __init__(
        self, handler: str, *, code_dirs: Sequence[Path], **options: Unpack[FunctionOptions]
    ) -> None:
        if not code_dirs:
            raise ValueError("code_dirs must name at least one directory")
        self.handler = handler
        self.code_dirs = [Path(d) for d in code_dirs]
        self.env = dict(options.get("env") or {})
        self.timeout_s = options.get("timeout_s", 30)
        self.function_name = options.get("function_name", "edgeroute-local")
        self.memory_mb = options.get("memory_mb", 512)
        self.region = options.get("region") or self.env.get("AWS_REGION") or "us-east-1"
        self.init_timeout_s = options.get("init_timeout_s", 10.0)
        self.python = options.get("python") or sys.executable
        self.inherit_env = options.get("inherit_env", False)
        self.function_arn = (
            f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"
        )
        self._lock = threading.Lock()
        self._events: queue.Queue[RuntimeEvent | Exited] = queue.Queue()
        self._emulator: RuntimeApiEmulator | None = None
        self._process: RuntimeProcess | None = None
        self._first_poll: float | None = None
        self._init_log_end: int | None = None

    @property
    def pid(self) -> int | None:
        """The runtime process id while an environment is up (None when not)."""
        return self._process.pid if self._process is not None and self._process.alive else None

    def invoke(
        self,
        event: Any,
        *,
        client_context: Mapping[str, Any] | None = None,
        cognito_identity: Mapping[str, Any] | None = None,
    ) -> InvocationResult:
        """Run one event. ``bytes`` are sent as the raw payload; anything else as JSON."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        if len(body) > MAX_REQUEST_BYTES:
            raise ValueError(
                f"Request payload is {len(body)} bytes; Lambda accepts at most "
                f"{MAX_REQUEST_BYTES} bytes for a synchronous invoke"
            )
        with self._lock:
            cold = self._process is None or not self._process.alive
            if cold:
                self._start()
            assert self._emulator is not None and self._process is not None
            request_id = new_request_id()
            log_start = 0 if cold else self._process.log_offset()
            self._emulator.submit(
                Invocation(
                    request_id=request_id,
                    body=body,
                    timeout_s=self.timeout_s,
                    function_arn=self.function_arn,
                    client_context=_json_header(client_context),
                    cognito_identity=_json_header(cognito_identity),
                )
            )
            return self._await(request_id, cold, log_start)

    def close(self) -> None:
        """Stop the runtime process and the Runtime API server."""
        with self._lock:
            self._stop()

    def __enter__(self) -> LocalFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self._stop()
        # Fresh queue and server per environment, so a dead runtime's parked /next poll
        # or late post can never take or answer the next environment's event.
        events: queue.Queue[RuntimeEvent | Exited] = queue.Queue()
        self._events = events
        self._first_poll = None
        self._init_log_end = None
        process_ready = threading.Event()

        def on_runtime_event(ev: RuntimeEvent) -> None:
            # Runs on the server thread while the first /next is still unanswered, so the
            # output so far is exactly the init output; reading it later would race the
            # handler's own prints.
            if isinstance(ev, Polled) and self._init_log_end is None:
                process_ready.wait(5)
                if self._process is not None:
                    self._init_log_end = self._process.log_offset()
            events.put(ev)

        self._emulator = RuntimeApiEmulator(on_runtime_event).start()
        # The version is only known for our own interpreter; awslambdaric reads it from
        # AWS_EXECUTION_ENV to pick its polling mode.
        same_python = self.python == sys.executable
        python_version = (sys.version_info.major, sys.version_info.minor) if same_python else None
        env = lambda_environment(
            handler=self.handler,
            code_dirs=self.code_dirs,
            function_name=self.function_name,
            memory_mb=self.memory_mb,
            region=self.region,
            api_address=self._emulator.address,
            env=self.env,
            inherit_env=self.inherit_env,
            python_version=python_version,
        )
        # Lambda's working directory is the task root (/var/task).
        self._process = RuntimeProcess(
            self.python, self.handler, env, self.code_dirs[0], events.put
        )
        process_ready.set()

    def _stop(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
        if self._emulator is not None:
            self._emulator.close()
            self._emulator = None

    def _await(self, request_id: str, cold: bool, log_start: int) -> InvocationResult:
        assert self._process is not None
        proc = self._process
        att = _Attempt(request_id, cold, log_start)
        deadline = (proc.started_at + self.init_timeout_s) if cold else math.inf
        while True:
            wait = deadline - time.perf_counter()
            try:
                ev = self._events.get(timeout=None if wait == math.inf else max(wait, 0.0))
            except queue.Empty:
                return self._timed_out(att)
            if isinstance(ev, Polled):
                if self._first_poll is None:
                    self._first_poll = ev.at
                    att.init_log_end = self._init_log_end
            elif isinstance(ev, Dispatched) and ev.request_id == request_id:
                att.dispatched_at = ev.at
                deadline = ev.at + self.timeout_s
            elif isinstance(ev, Posted) and ev.kind == "init_error":
                # awslambdaric exits right after reporting; wait so its log lines are in.
                _wait_exit(proc, 2.0)
                error = ev.error_shape()
                # Init errors carry an empty requestId; Invoke reports the invocation's.
                error["requestId"] = error.get("requestId") or request_id
                return self._result(att, ev.at, error=error, discard=True)
            elif isinstance(ev, Posted) and ev.request_id == request_id:
                if ev.kind == "response":
                    return self._result(att, ev.at, response=ev)
                error = ev.error_shape()
                # A 413 (oversized response) ends the runtime, as on Lambda.
                discard = error.get("errorType") == "Function.ResponseSizeTooLarge"
                return self._result(att, ev.at, error=error, discard=discard)
            elif isinstance(ev, Exited):
                how = describe_exit(ev.returncode)
                error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: {how}",
                }
                return self._result(att, ev.at, error=error, discard=True)

    def _timed_out(self, att: _Attempt) -> InvocationResult:
        in_init = att.dispatched_at is None
        limit = self.init_timeout_s if in_init else self.timeout_s
        message = f"{'Init' if in_init else 'Task'} timed out after {limit:.2f} seconds"
        error = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {att.request_id} Error: {message}",
        }
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        att.extra_log = f"{stamp}Z {att.request_id} {message}\n"
        return self._result(att, time.perf_counter(), error=error, discard=True)

    def _result(
        self,
        att: _Attempt,
        ended_at: float,
        *,
        response: Posted | None = None,
        error: dict[str, Any] | None = None,
        discard: bool = False,
    ) -> InvocationResult:
        proc = self._process
        assert proc is not None
        max_mem = proc.max_memory_mb()
        if discard:
            proc.kill()  # the environment is not reused after a timeout or crash
        init_ms = 0.0
        if att.cold:
            # Init ends at the first /next poll; if it never came, at the failure.
            init_end = self._first_poll if self._first_poll is not None else ended_at
            init_ms = (init_end - proc.started_at) * 1000
        duration_ms = 0.0
        if att.dispatched_at is not None:
            duration_ms = (ended_at - att.dispatched_at) * 1000
        logs = _lambda_logs(
            proc,
            att,
            duration_ms=duration_ms,
            init_ms=init_ms if att.cold else None,
            memory_mb=self.memory_mb,
            max_memory_mb=max_mem,
        )
        if discard:
            self._stop()
        common: dict[str, Any] = {
            "init_ms": init_ms,
            "duration_ms": duration_ms,
            "logs": logs,
            "request_id": att.request_id,
            "cold": att.cold,
            "max_memory_mb": max_mem,
        }
        if error is not None:
            raw = json.dumps(error).encode()
            return InvocationResult(error, "Unhandled", error, raw_payload=raw, **common)
        assert response is not None
        return InvocationResult(_decode(response), None, None, raw_payload=response.body, **common)


@dataclass
class _Attempt:
    """Bookkeeping for one invocation while its events arrive."""

    request_id: str
    cold: bool
    log_start: int
    init_log_end: int | None = None
    dispatched_at: float | None = None
    extra_log: str = ""


def invoke(
    handler: str, event: Any, *, code_dirs: Sequence[Path], **options: Unpack[FunctionOptions]
) -> InvocationResult:
    """Run ``event`` through ``handler`` in a fresh (cold) environment, then tear it down."""
    with LocalFunction(handler, code_dirs=code_dirs, **options) as fn:
        return fn.invoke(event)


def _lambda_logs(
    proc: RuntimeProcess,
    att: _Attempt,
    *,
    duration_ms: float,
    init_ms: float | None,
    memory_mb: int,
    max_memory_mb: int | None,
) -> str:
    """The function's output framed by START/END/REPORT lines as CloudWatch shows it."""
    split = att.init_log_end
    if split is None:
        # Warm: everything since the last invocation; cold with init never finished:
        # all output is init output.
        split = proc.log_offset() if init_ms is not None else att.log_start
    init_part = proc.logs(att.log_start, split) if split > att.log_start else ""
    body = proc.logs(split)
    if body and not body.endswith("\n"):
        body += "\n"
    rid = att.request_id
    used = max_memory_mb if max_memory_mb is not None else "-"
    report = (
        f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {used} MB"
    )
    if init_ms is not None:
        report += f"\tInit Duration: {init_ms:.2f} ms"
    return (
        f"{init_part}START RequestId: {rid} Version: $LATEST\n{body}{att.extra_log}"
        f"END RequestId: {rid}\n{report}\n"
    )


def _wait_exit(proc: RuntimeProcess, timeout_s: float) -> bool:
    end = time.perf_counter() + timeout_s
    while proc.alive and time.perf_counter() < end:
        time.sleep(0.005)
    return not proc.alive


def _decode(response: Posted) -> Any:
    if "json" in response.headers.get("content-type", "application/json"):
        try:
            return json.loads(response.body)
        except ValueError:
            pass
    return response.body


def _json_header(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), separators=(",", ":"))
