"""Shared fixtures: the real servers the acceptance tests talk to.

Every server is started on 127.0.0.1 with a free port by the fixture that needs it,
once per session, and stopped by that fixture when the session ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
import yaml

from edgeroute.tools import llama
from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import EDGE_MODELS, GatewayProcess
from tests.support.moto_server import MotoServer


@contextmanager
def _llama_server() -> Iterator[str]:
    proc, url = llama.start()
    try:
        yield url
    finally:
        llama.stop(proc)


@pytest.fixture(scope="session")
def llama_url() -> Iterator[str]:
    """llama.cpp's server with SmolLM2-135M (1 thread), the real OpenAI-compatible upstream."""
    with _llama_server() as url:
        yield url


@pytest.fixture(scope="session")
def second_llama_url() -> Iterator[str]:
    """Another llama.cpp server: the routing tests register it as the large tier."""
    with _llama_server() as url:
        yield url


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server (DynamoDB and S3 protocols) per session, started on first use."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def fault_upstream() -> Iterator[FaultUpstream]:
    with FaultUpstream() as server:
        yield server


def acceptance_registry(llama_url: str, fault_url: str) -> dict[str, object]:
    """The registry every acceptance test runs against."""
    return {
        "models": [
            {
                "name": "smollm2-135m",
                "aliases": ["smollm2"],
                "protocol": "openai",
                "endpoint": llama_url,
                "tier": "small",
                # json: llama.cpp's server constrains output to a response_format schema.
                "capabilities": ["chat", "completions", "embeddings", "json"],
                "context_window": 2048,
                "parameters": {
                    "temperature": {"min": 0, "max": 1.5, "rule": "reject"},
                    "top_p": {"min": 0, "max": 1, "rule": "clamp"},
                    "max_tokens": {"min": 1, "max": 256, "default": 48, "rule": "clamp"},
                },
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                "timeouts": {"connect": 2, "read": 30, "total": 60},
            },
            *EDGE_MODELS,
            fault_model("instant", fault_url, "instant", price={"input_per_mtok": 3.0}),
            fault_model("no-usage", fault_url, "no-usage"),
            fault_model("broken", fault_url, "status-500"),
            fault_model("overloaded", fault_url, "status-503"),
            fault_model("flaky", fault_url, "flaky#retry", retries=1),
            fault_model(
                "hangs", fault_url, "timeout", timeouts={"connect": 1, "read": 1, "total": 2}
            ),
            fault_model("resets", fault_url, "reset"),
            fault_model("cuts", fault_url, "cut"),
            fault_model("malformed", fault_url, "malformed"),
            fault_model("stream-error", fault_url, "stream-error"),
            fault_model(
                "stalls", fault_url, "stall", timeouts={"connect": 1, "read": 1, "total": 10}
            ),
            fault_model(
                "slow-stream",
                fault_url,
                "slow-stream",
                timeouts={"connect": 1, "read": 5, "total": 60},
            ),
            fault_model("with-fallback", fault_url, "status-500", fallbacks=["instant"]),
            fault_model("chat-only", fault_url, "instant", capabilities=["chat"]),
            fault_model(
                "unreachable",
                "http://127.0.0.1:9/v1",
                "instant",
                timeouts={"connect": 1, "read": 1, "total": 3},
            ),
        ]
    }


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edgeroute")


@pytest.fixture(scope="session")
def registry_file(llama_url: str, fault_upstream: FaultUpstream, workdir: Path) -> Path:
    registry = workdir / "models.yaml"
    registry.write_text(yaml.safe_dump(acceptance_registry(llama_url, fault_upstream.url)))
    return registry


@pytest.fixture(scope="session")
def gateway(registry_file: Path, workdir: Path) -> Iterator[GatewayProcess]:
    """`edgeroute serve` as a real process on the SQLite store."""
    registry = registry_file
    env = {
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(workdir / "store" / "edgeroute.db"),
        "EDGEROUTE_KEY_CACHE_TTL": "1",
    }
    with GatewayProcess(env, workdir) as process:
        yield process


@pytest.fixture(scope="session")
def api_key(gateway: GatewayProcess) -> str:
    return str(gateway.create_key("acceptance")["api_key"])


@pytest.fixture(scope="session")
def client(gateway: GatewayProcess, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=api_key, max_retries=0, timeout=60)
