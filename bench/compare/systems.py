"""The systems compared, each started as its own process on the proxy core: the floor
(bench/compare/floor_proxy.py), ``edgeroute serve`` (embedded store, one worker) in two
classification modes, and LiteLLM's proxy from its own venv (``.venv-litellm``, which
``make bench`` builds), when that venv is there.

Pinning: with two or more cores, every proxy runs on core 0 and the client and the
upstream on core 1 (``os.sched_setaffinity`` in the child before it executes, as
``taskset`` does; threads and child processes inherit it). With one core nothing is pinned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from tests.support.gateway import free_port

REPO = Path(__file__).resolve().parents[2]
LITELLM = REPO / ".venv-litellm" / "bin" / "litellm"
LITELLM_KEY = "sk-bench-master"


def cores() -> tuple[set[int], set[int]]:
    """(proxy cores, client and upstream cores)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return set(available), set(available)
    return {available[0]}, set(available[1:])


def pinned(cpus: set[int]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def _tree(pid: int) -> list[int]:
    """The process and its descendants (LiteLLM may fork a worker)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found.append(current)
        todo.extend(int(c) for c in children)
    return found


def peak_rss_mib(pid: int) -> float:
    """The process tree's peak resident memory: the sum of its high-water marks."""
    total_kib = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{member}/status").read_text().splitlines()
            total_kib += next(int(x.split()[1]) for x in status if x.startswith("VmHWM"))
    return total_kib / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process tree has used so far: per request, a figure
    that a busy machine's waiting does not inflate."""
    ticks = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class System:
    """One proxy as the client sees it: its chat URL and the headers it wants."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> float:
        """Stop it; its peak resident memory in MiB (0 for the direct call)."""
        if self.proc is None:
            return 0.0
        rss = peak_rss_mib(self.proc.pid)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return rss


def _spawn(
    cmd: list[str], env: dict[str, str], log: Path, cpus: set[int]
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd,
            env={k: v for k, v in {**os.environ, **env}.items() if v},  # "": unset it
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pinned(cpus),
        )


def _ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start:\n{log.read_text()[-3000:]}")


def start_upstream(cpus: set[int], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The instant upstream (tests/support/fault_upstream.py), its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fault_upstream"],
        stdout=subprocess.PIPE,
        cwd=REPO,
        start_new_session=True,
        preexec_fn=pinned(cpus),
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().decode().strip().rsplit(" ", 1)[-1]


def floor(upstream: str, cpus: set[int], workdir: Path) -> System:
    port = free_port()
    log = workdir / "floor.log"
    cmd = [sys.executable, "-m", "bench.compare.floor_proxy", str(port), upstream]
    proc = _spawn(cmd, {"PYTHONPATH": _pythonpath()}, log, cpus)
    base = f"http://127.0.0.1:{port}"
    _ready(proc, base + "/docs", log)
    return System("floor", base + "/v1/chat/completions", proc=proc)


def instant_registry(upstream: str, path: Path) -> Path:
    """A registry of one model, ``instant``, on the instant upstream."""
    model = {
        "name": "instant",
        "endpoint": upstream,
        "tier": "small",
        "capabilities": ["chat"],
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }
    path.write_text(yaml.safe_dump({"models": [model]}))
    return path


def edgeroute(
    name: str, upstream: str, cpus: set[int], workdir: Path, env: dict[str, str]
) -> System:
    folder = workdir / name
    folder.mkdir()
    registry = instant_registry(upstream, folder / "models.yaml")
    full_env = {
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(folder / "edgeroute.db"),
        "PYTHONPATH": _pythonpath(),
        **env,
    }
    cli = [sys.executable, "-m", "edgeroute.tools.cli"]
    created = subprocess.run(
        [*cli, "keys", "create", "--name", "bench", "--json"],
        env={**os.environ, **full_env},
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    key = yaml.safe_load(created.stdout)["api_key"]
    port = free_port()
    log = folder / "serve.log"
    proc = _spawn([*cli, "serve", "--port", str(port)], full_env, log, cpus)
    base = f"http://127.0.0.1:{port}"
    _ready(proc, base + "/healthz", log)
    return System(name, base + "/v1/chat/completions", {"Authorization": f"Bearer {key}"}, proc)


def litellm(upstream: str, cpus: set[int], workdir: Path) -> System:
    folder = workdir / "litellm"
    folder.mkdir()
    config = {
        "model_list": [
            {
                "model_name": "instant",
                "litellm_params": {
                    "model": "openai/instant",
                    "api_base": upstream,
                    "api_key": "none",
                },
            }
        ],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"cache": False, "telemetry": False},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = folder / "litellm.log"
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
        "LITELLM_LOG": "ERROR",
        "DATABASE_URL": "",
        "PYTHONPATH": "",
    }
    cmd = [str(LITELLM), "--config", "config.yaml", "--port", str(port), "--num_workers", "1"]
    proc = _spawn(cmd, env, log, cpus)
    base = f"http://127.0.0.1:{port}"
    _ready(proc, base + "/health/liveliness", log, timeout_s=240)
    return System(
        "litellm", base + "/v1/chat/completions", {"Authorization": f"Bearer {LITELLM_KEY}"}, proc
    )


def _pythonpath() -> str:
    return os.pathsep.join([str(REPO / "functions"), str(REPO)])
