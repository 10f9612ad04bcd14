"""health.probe_all against real servers: llama.cpp's (healthy, with /metrics), a small
vLLM/TGI-shaped server on loopback (overloaded, then Prometheus gauges), and an
address nothing listens on. Samples land in the store with their expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgeroute.config.registry import ModelSpec, Registry
from edgeroute.health.probe import probe_all
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.upstreams.http import close_shared_client
from tests.support.prometheus import VLLM_METRICS


class _Handler(BaseHTTPRequestHandler):
    health_status = 503

    def do_GET(self) -> None:
        if self.path == "/health":
            status, body = self.health_status, b""
        elif self.path == "/metrics":
            status, body = 200, VLLM_METRICS.encode()
        else:
            status, body = 404, b""
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def vllm_like() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _model(name: str, endpoint: str, **extra: object) -> ModelSpec:
    return ModelSpec.model_validate({"name": name, "endpoint": endpoint, "tier": "small", **extra})


async def test_probe_all_samples_each_endpoint_once(
    llama_url: str, vllm_like: str, tmp_path: Path
) -> None:
    registry = Registry(
        [
            _model("llama", llama_url),
            _model("llama-alias", llama_url),  # same endpoint: probed once
            _model("busy", vllm_like),
            _model("down", "http://127.0.0.1:9/v1"),
            _model("on-cpu", "", protocol="edge"),  # in-process: nothing to probe
        ]
    )
    store = SQLiteStore(str(tmp_path / "h.db"))
    before = time.time()
    try:
        results = await probe_all(registry, store, ttl_s=60, timeout_s=2)
    finally:
        await close_shared_client()
    assert set(results) == {llama_url, vllm_like, "http://127.0.0.1:9/v1"}

    llama = results[llama_url]
    assert llama["ok"] is True and llama["error"] is None
    assert 0 < llama["latency_ms"] < 2000
    assert llama["queue_depth"] == 0  # llamacpp:requests_deferred on an idle server
    assert llama["running"] is not None

    busy = results[vllm_like]
    assert busy["ok"] is False and "503" in busy["error"]
    assert busy["queue_depth"] == 5.0 and busy["running"] == 7.0

    down = results["http://127.0.0.1:9/v1"]
    assert down["ok"] is False and down["latency_ms"] is None and down["error"]

    stored = await store.get_health(list(results))
    assert stored[llama_url]["ok"] is True
    assert stored[vllm_like]["queue_depth"] == 5.0
    assert all(s["checked_at"] >= before - 1 for s in stored.values())
    await store.close()
