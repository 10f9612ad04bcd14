"""The runtime subprocess: Lambda's environment, log capture and exit reporting."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Set by Lambda for the runtime; a function's own variables cannot replace them.
RESERVED_VARS = frozenset(
    {"AWS_LAMBDA_RUNTIME_API", "_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"}
)
# Passed from the caller's shell so boto3 finds credentials and local endpoints, as it
# finds the execution role's credentials in the environment on Lambda.
_PASSTHROUGH = ("PATH", "HOME", "TMPDIR", "SYSTEMROOT")
_PASSTHROUGH_PREFIXES = (
    "AWS_ACCESS_KEY",
    "AWS_SECRET",
    "AWS_SESSION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_CA_BUNDLE",
)


@dataclass(frozen=True)
class Exited:
    """The runtime process ended (crash, ``sys.exit`` or our kill)."""

    returncode: int
    at: float


def lambda_environment(
    *,
    handler: str,
    code_dirs: Sequence[Path],
    function_name: str,
    memory_mb: int,
    region: str,
    api_address: str,
    env: Mapping[str, str],
    inherit_env: bool,
    python_version: tuple[int, int] | None,
) -> dict[str, str]:
    """The variables Lambda's Python runtime starts with, plus the function's own."""
    if inherit_env:
        out = dict(os.environ)
    else:
        out = {
            k: v
            for k, v in os.environ.items()
            if k in _PASSTHROUGH or k.startswith(_PASSTHROUGH_PREFIXES)
        }
    stamp = time.strftime("%Y/%m/%d", time.gmtime())
    out.update(
        {
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{stamp}/[$LATEST]{os.urandom(16).hex()}",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            # Pipes are block-buffered; unbuffered output keeps logs in order with results.
            "PYTHONUNBUFFERED": "1",
        }
    )
    if python_version is not None:
        # awslambdaric switches to thread polling for python3.12+ from this value.
        out["AWS_EXECUTION_ENV"] = f"AWS_Lambda_python{python_version[0]}.{python_version[1]}"
    out.update({k: v for k, v in env.items() if k not in RESERVED_VARS and k != "PYTHONPATH"})
    paths = [str(Path(d).resolve()) for d in code_dirs]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    out["PYTHONPATH"] = os.pathsep.join(paths)
    out["AWS_LAMBDA_RUNTIME_API"] = api_address
    out["_HANDLER"] = handler
    out["LAMBDA_TASK_ROOT"] = paths[0] if paths else os.getcwd()
    out["LAMBDA_RUNTIME_DIR"] = str(Path(sys.executable).parent)
    return out


class RuntimeProcess:
    """``python -m awslambdaric HANDLER`` in its own session, its output captured."""

    def __init__(
        self,
        python: str,
        handler: str,
        env: Mapping[str, str],
        cwd: Path,
        on_exit: Callable[[Exited], None],
    ) -> None:
        self.started_at = time.perf_counter()
        self._proc = subprocess.Popen(
            [python, "-m", "awslambdaric", handler],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: a timeout kills the handler's children too, as Lambda
            # discards the whole sandbox.
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._fd = self._proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._eof = False
        self._pump = threading.Thread(target=self._pump_logs, daemon=True, name="lambda-logs")
        self._pump.start()
        self._waiter = threading.Thread(
            target=lambda: on_exit(Exited(self._proc.wait(), time.perf_counter())),
            daemon=True,
            name="lambda-exit",
        )
        self._waiter.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def max_memory_mb(self) -> int | None:
        """Peak resident set (VmHWM), Lambda's "Max Memory Used"; None once gone."""
        try:
            status = Path(f"/proc/{self._proc.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) // 1024 if match else None

    def log_offset(self) -> int:
        """Read everything written so far and return the end of the buffer."""
        with self._lock:
            self._read_available()
            return len(self._buf)

    def logs(self, start: int, end: int | None = None) -> str:
        with self._lock:
            self._read_available()
            raw = bytes(self._buf[start:end])
        # awslambdaric joins the lines of an error with "\r" so CloudWatch keeps them in
        # one event; a terminal would overprint them, so show them as lines.
        return re.sub(r"\r(?!\n)", "\n", raw.decode("utf-8", "replace"))

    def kill(self, wait_s: float = 5.0) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=wait_s)
        self._pump.join(timeout=1)
        with self._lock:
            self._read_available()

    def close(self) -> None:
        self.kill()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def _pump_logs(self) -> None:
        # Keep the pipe drained so a chatty handler never blocks on a full pipe.
        while not self._eof:
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.2)
            except (OSError, ValueError):
                return  # fd closed under us
            if ready:
                with self._lock:
                    self._read_available()

    def _read_available(self) -> None:
        while not self._eof:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                self._eof = True
                return
            if not chunk:
                self._eof = True
                return
            self._buf += chunk


def describe_exit(returncode: int) -> str:
    """Lambda's wording (Go's ExitError strings) for how the runtime ended."""
    if returncode == 0:
        return "Runtime exited without providing a reason"
    if returncode < 0:
        names = {
            signal.SIGKILL: "killed",
            signal.SIGSEGV: "segmentation fault",
            signal.SIGABRT: "aborted",
            signal.SIGTERM: "terminated",
            signal.SIGBUS: "bus error",
        }
        sig = signal.Signals(-returncode)
        return f"Runtime exited with error: signal: {names.get(sig, sig.name.lower())}"
    return f"Runtime exited with error: exit status {returncode}"
