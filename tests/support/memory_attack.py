"""An attack corpus against a running `edgeroute serve`, watching its memory and /healthz.

Each case is sent while two threads watch the gateway process: one samples its
resident memory (``/proc/<pid>/status``, every 20 ms) and one asks ``/healthz`` every
200 ms. The report gives, per case, the answers seen, the time taken and the peak
resident memory, and overall whether /healthz ever failed or took longer than a second.

Cases (``scale`` shrinks the sizes for a quick run):
  headers-64mb    four 64 MB header values on raw sockets, one connection each
  many-headers    10,000 small headers on one request
  body-50mb       a 50 MB body declared by content-length, and one sent chunked
  flood-one-key   concurrent streams on one key limited to a few at once
  embed-inputs    256 inputs of 20 KB each in one embeddings request, and of 2 KB
  hostile-text    lone surrogates, NUL, bidi and zero-width text, 1 MB of one word

``python -m bench memory`` runs it at full scale and prints the figures for
docs/security.md; the acceptance test runs a short version.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

HEALTH_EVERY_S = 0.2
RSS_EVERY_S = 0.02


def rss_mb(pid: int) -> float:
    """A process's resident memory now, from /proc (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Watch:
    """Peak memory and /healthz answers while it runs (two daemon threads)."""

    pid: int
    url: str
    peak_mb: float = 0.0
    health_slowest_s: float = 0.0
    health_failures: list[str] = field(default_factory=list)
    health_checks: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Watch:
        self.peak_mb = rss_mb(self.pid)
        for target in (self._sample, self._probe):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _sample(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):
            try:
                self.peak_mb = max(self.peak_mb, rss_mb(self.pid))
            except (OSError, RuntimeError):
                return  # the process is gone; the test will say so

    def _probe(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(HEALTH_EVERY_S):
                started = time.perf_counter()
                try:
                    status = client.get(self.url + "/healthz").status_code
                except httpx.HTTPError as exc:
                    self.health_failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                took = time.perf_counter() - started
                self.health_checks += 1
                self.health_slowest_s = max(self.health_slowest_s, took)
                if status != 200:
                    self.health_failures.append(f"status {status}")


@dataclass
class CaseResult:
    name: str
    answers: Counter[str]
    seconds: float
    peak_mb: float


@dataclass
class Target:
    url: str
    key: str  # an API key without limits
    limited_key: str  # an API key with max_concurrent (the flood case)
    model: str  # an instant upstream model with chat and embeddings

    @property
    def host_port(self) -> tuple[str, int]:
        parsed = httpx.URL(self.url)
        return parsed.host, parsed.port or 80


def _raw_request(target: Target, head_lines: list[bytes], body: bytes = b"") -> str:
    """Send a request on a raw socket; the status line's code, or how the server ended it.
    Sending stops when the server closes the connection (as a capped server does)."""
    host, port = target.host_port
    request = b"\r\n".join(
        [b"POST /v1/chat/completions HTTP/1.1", f"host: {host}".encode(), *head_lines, b"", b""]
    )
    with socket.create_connection((host, port), timeout=60) as sock:
        try:
            view = memoryview(request + body)
            for start in range(0, len(view), 1 << 20):
                sock.sendall(view[start : start + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: read what it answered
        try:
            reply = sock.recv(4096)
        except (ConnectionResetError, TimeoutError) as exc:
            return type(exc).__name__
    return reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/") else "closed"


def headers_64mb(target: Target, scale: float) -> list[str]:
    value = b"a" * int(64 * 1024 * 1024 * scale)
    return [
        _raw_request(target, [f"x-attack-{i}: ".encode() + value, b"content-length: 0"])
        for i in range(4)
    ]


def many_headers(target: Target, scale: float) -> list[str]:
    lines = [f"x-h{i}: v".encode() for i in range(int(10_000 * scale) + 200)]
    return [_raw_request(target, [*lines, b"content-length: 0"])]


def body_50mb(target: Target, scale: float) -> list[str]:
    size = int(50 * 1024 * 1024 * scale) + 7 * 1024 * 1024
    body = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * size + b'"}]}'
    auth = f"authorization: Bearer {target.key}".encode()
    declared = _raw_request(
        target,
        [auth, f"content-length: {len(body)}".encode(), b"content-type: application/json"],
        body,
    )
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _pieces(body, 1 << 20)) + b"0\r\n\r\n"
    chunked = _raw_request(target, [auth, b"transfer-encoding: chunked"], chunks)
    return [declared, chunked]


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _post_all(
    target: Target, key: str, bodies: list[tuple[str, dict[str, Any]]], concurrency: int
) -> list[str]:
    """POST each (path, body) with ``concurrency`` threads; status codes (or error names)."""
    results: list[str] = []
    lock = threading.Lock()
    queue = list(bodies)

    def worker() -> None:
        with httpx.Client(base_url=target.url, timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    path, body = queue.pop()
                # Encoded here: httpx's json= cannot encode a lone surrogate; JSON's escape can.
                content = json.dumps(body).encode()
                headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
                try:
                    answer = client.post(path, content=content, headers=headers)
                    outcome = str(answer.status_code)
                    if answer.status_code >= 400:
                        outcome += " " + str(answer.json().get("error", {}).get("code"))
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def flood_one_key(target: Target, scale: float) -> list[str]:
    body = {
        "model": target.model,
        "stream": True,
        "messages": [{"role": "user", "content": "flood " * 200}],
    }
    count = max(int(400 * scale), 40)
    return _post_all(target, target.limited_key, [("/v1/chat/completions", body)] * count, 32)


def embed_inputs(target: Target, scale: float) -> list[str]:
    count = max(int(256 * scale), 16)
    huge = [f"input {i} " + "word " * 4000 for i in range(count)]  # 20 KB each: refused
    fitting = [f"input {i} " + "word " * 400 for i in range(count)]  # 2 KB each: answered
    bodies = [{"model": target.model, "input": inputs} for inputs in (huge, fitting)]
    return _post_all(target, target.key, [("/v1/embeddings", b) for b in bodies * 2], 4)


def hostile_text(target: Target, scale: float) -> list[str]:
    texts = ["\ud800 lone", "nul \x00 here", "\u202eevil\u202c", "zero\u200bwidth\u2060"]
    texts.append("word " * int(200_000 * scale))  # 1 MB of one word at full scale
    bodies = [
        (
            "/v1/chat/completions",
            {"model": target.model, "messages": [{"role": "user", "content": t}]},
        )
        for t in texts
    ]
    return _post_all(target, target.key, bodies, 4)


CASES: dict[str, Callable[[Target, float], list[str]]] = {
    "headers-64mb": headers_64mb,
    "many-headers": many_headers,
    "body-50mb": body_50mb,
    "flood-one-key": flood_one_key,
    "embed-inputs": embed_inputs,
    "hostile-text": hostile_text,
}


@dataclass
class Report:
    cases: list[CaseResult]
    start_mb: float
    watch: Watch

    def as_json(self) -> dict[str, Any]:
        return {
            "start_mb": round(self.start_mb, 1),
            "peak_mb": round(self.watch.peak_mb, 1),
            "healthz_checks": self.watch.health_checks,
            "healthz_failures": self.watch.health_failures,
            "healthz_slowest_s": round(self.watch.health_slowest_s, 3),
            "cases": [
                {
                    "case": c.name,
                    "answers": dict(c.answers),
                    "seconds": round(c.seconds, 2),
                    "peak_mb": round(c.peak_mb, 1),
                }
                for c in self.cases
            ],
        }


def run_attack(pid: int, target: Target, scale: float = 1.0) -> Report:
    """Every case in turn against the gateway process ``pid``, watched throughout."""
    start = rss_mb(pid)
    results: list[CaseResult] = []
    with Watch(pid, target.url) as watch:
        for name, case in CASES.items():
            started = time.perf_counter()
            answers = Counter(case(target, scale))
            results.append(CaseResult(name, answers, time.perf_counter() - started, watch.peak_mb))
    return Report(results, start, watch)


def main() -> None:
    """Full scale against a fresh gateway and fault upstream; prints the report as JSON."""
    import tempfile
    from pathlib import Path

    import yaml

    from tests.support.fault_upstream import FaultUpstream, fault_model
    from tests.support.gateway import GatewayProcess

    with FaultUpstream() as upstream, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = work / "models.yaml"
        model = fault_model("instant", upstream.url, "instant")
        registry.write_text(yaml.safe_dump({"models": [model]}))
        env = {"EDGEROUTE_REGISTRY": str(registry), "EDGEROUTE_SQLITE_PATH": str(work / "s.db")}
        with GatewayProcess(env, work) as gateway:
            assert gateway.proc is not None
            key = str(gateway.create_key("attack")["api_key"])
            limited = str(gateway.create_key("flood", "--max-concurrent", "4")["api_key"])
            target = Target(gateway.url, key, limited, "instant")
            report = run_attack(gateway.proc.pid, target)
    print(json.dumps(report.as_json(), indent=2))


if __name__ == "__main__":
    main()
