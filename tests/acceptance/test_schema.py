"""schemathesis against `edgeroute serve`, driven by the app's own OpenAPI document:
every operation, with bodies and parameters generated from the schema and a valid key,
must answer without a 5xx, with a status the document declares for it, in the declared
content type, with a body that matches (OpenAI's error shape for every error).

The document names the served models, so generated requests reach the router and the
upstreams rather than stopping at an unknown-model 404: llama.cpp's SmolLM2 (a real
upstream, answering at most 8 tokens), the fault upstream's ``instant`` behaviour, the
edge embedder and moderation model. Upstream failures are
tests/acceptance/test_upstream_faults.py's subject: a 502 from an upstream told to fail
is not the gateway's 5xx. What this found is in docs/security.md (a null or missing
message field made llama.cpp answer 500, which opened the shared circuit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import EDGE_MODELS, GatewayProcess

EXAMPLES = 40  # per operation, positive and negative: ~4,000 cases in under a minute
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def registry(llama_url: str, fault_url: str) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": "smollm2-135m",
                "protocol": "openai",
                "endpoint": llama_url,
                "tier": "small",
                "capabilities": ["chat", "completions", "embeddings"],
                "context_window": 2048,
                "parameters": {"max_tokens": {"min": 1, "max": 8, "default": 8, "rule": "clamp"}},
                "timeouts": {"connect": 2, "read": 30, "total": 60},
            },
            fault_model("instant", fault_url, "instant", price={"input_per_mtok": 3.0}),
            fault_model("quiet", fault_url, "no-usage", fallbacks=["instant"]),
            *EDGE_MODELS,
        ]
    }


@pytest.fixture(scope="module")
def served(
    llama_url: str, fault_upstream: FaultUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("schema")
    models = registry(llama_url, fault_upstream.url)
    (workdir / "models.yaml").write_text(yaml.safe_dump(models))
    env = {
        "EDGEROUTE_REGISTRY": str(workdir / "models.yaml"),
        "EDGEROUTE_SQLITE_PATH": str(workdir / "store" / "edgeroute.db"),
    }
    with GatewayProcess(env, workdir) as process:
        yield process


@pytest.fixture(scope="module")
def served_key(served: GatewayProcess) -> str:
    return str(served.create_key("schemathesis")["api_key"])


def _document() -> dict[str, Any]:
    """The OpenAPI document the served gateway gives, built in-process from the same model
    names at collection time (schemathesis 4.32's fixture loader fails on pytest 9;
    ``test_the_served_document_is_the_one_tested`` checks the two are equal)."""
    from edgeroute.api.app import create_app
    from tests.support.inprocess import memory_gateway

    app = create_app(
        memory_gateway(yaml.safe_dump(registry("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")))
    )
    return app.openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases every run: a failure here is reproducible
)
def test_every_operation_answers_as_documented(
    case: Any, served: GatewayProcess, served_key: str
) -> None:
    case.call_and_validate(
        base_url=served.url,
        headers={"authorization": f"Bearer {served_key}"},
        checks=CHECKS,
        timeout=30,
    )


def test_the_served_document_is_the_one_tested(served: GatewayProcess) -> None:
    assert httpx.get(served.url + "/openapi.json").json() == DOCUMENT


def test_the_document_names_the_models_and_the_error_shape() -> None:
    document = DOCUMENT
    chat = document["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"]
    assert {"smollm2-135m", "instant", "quiet", "auto", "edge-embed"} <= set(chat["enum"])
    operation = document["paths"]["/v1/chat/completions"]["post"]
    assert "422" not in operation["responses"]  # validation errors are 400s in OpenAI's shape
    for status in ("400", "401", "404", "429", "502", "503"):
        content = operation["responses"][status]["content"]["application/json"]["schema"]
        assert content == {"$ref": "#/components/schemas/OpenAIError"}, status
    assert "text/event-stream" in operation["responses"]["200"]["content"]
