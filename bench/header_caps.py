"""Header caps in `edgeroute serve`: what an oversized head costs, and what the cap costs
ordinary requests, for three ways to run uvicorn.

  httptools          uvicorn's default parser, no cap (edgeroute serve before the cap)
  httptools-capped   the same parser behind edgeroute.tools.header_guard (64 KB, 100)
  h11-capped         uvicorn's h11 parser with h11_max_incomplete_event_size=64 KB

For each: four 64 MB header values on raw sockets (answer, seconds, peak resident
memory of the server), then N sequential GET /healthz on one keep-alive connection
(requests per second, median latency).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from tests.support.gateway import free_port
from tests.support.memory_attack import Target, Watch, headers_64mb, rss_mb

VARIANTS = ("httptools", "httptools-capped", "h11-capped")
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "3000"))
CAP = 64 * 1024


# What an SDK sends, roughly: a dozen headers of ~1 KB in all.
ORDINARY_HEADERS = {
    "authorization": "Bearer " + "k" * 64,
    "user-agent": "OpenAI/Python 1.99.0",
    "x-stainless-lang": "python",
    "x-stainless-package-version": "1.99.0",
    "x-stainless-os": "Linux",
    "x-stainless-arch": "x64",
    "x-stainless-runtime": "CPython",
    "x-stainless-runtime-version": "3.11.7",
    "x-stainless-retry-count": "0",
    "x-request-trace": "t" * 600,
}


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds the process has used (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(variant: str, port: int) -> None:
    """The server side, in its own process: the gateway's app under ``variant``."""
    import uvicorn

    from edgeroute.api.app import create_app
    from edgeroute.pipeline.gateway import Gateway
    from edgeroute.settings import Settings
    from edgeroute.tools.header_guard import capped

    app = create_app(Gateway.from_settings(Settings.from_env()))
    options: dict[str, object] = {"http": "httptools"}
    if variant == "httptools-capped":
        options = {"http": capped(CAP, 100)}
    elif variant == "h11-capped":
        options = {"http": "h11", "h11_max_incomplete_event_size": CAP}
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", **options)  # type: ignore[arg-type]


def _start(variant: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    registry = work / "models.yaml"
    model = {"name": "m", "endpoint": "http://127.0.0.1:9/v1", "tier": "small"}
    registry.write_text(yaml.safe_dump({"models": [model]}))
    env = {
        **os.environ,
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(work / f"{variant}.db"),
    }
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.header_caps", "--serve", variant, str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{variant} did not start")


def measure(variant: str, work: Path) -> dict[str, object]:
    proc, url = _start(variant, work)
    try:
        target = Target(url, "", "", "")
        with httpx.Client(base_url=url) as client:  # warm up before the memory baseline
            for _ in range(50):
                client.get("/healthz")
        start_mb = rss_mb(proc.pid)
        with Watch(proc.pid, url) as watch:
            started = time.perf_counter()
            answers = headers_64mb(target, 1.0)
            attack_s = time.perf_counter() - started
        latencies = []
        cpu_before = _cpu_s(proc.pid)
        with httpx.Client(base_url=url, headers=ORDINARY_HEADERS) as client:
            for _ in range(SEQUENTIAL):
                t = time.perf_counter()
                client.get("/healthz")
                latencies.append(time.perf_counter() - t)
        cpu_us = (_cpu_s(proc.pid) - cpu_before) / SEQUENTIAL * 1e6
        return {
            "variant": variant,
            "answers": answers,
            "attack_s": round(attack_s, 2),
            "rss_start_mb": round(start_mb, 1),
            "rss_peak_mb": round(watch.peak_mb, 1),
            "healthz_slowest_during_attack_s": round(watch.health_slowest_s, 3),
            "server_cpu_us_per_request": round(cpu_us, 1),
            "healthz_rps": round(len(latencies) / sum(latencies)),
            "healthz_p50_ms": round(statistics.median(latencies) * 1000, 3),
        }
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            print(json.dumps(measure(variant, Path(tmp))), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
