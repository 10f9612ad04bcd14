"""handlers/api.py (Mangum) with the REST API's proxy event (payload 1.0), in process."""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.audit import captured_audit
from tests.support.gateway import GatewayProcess

EVENT = Path(__file__).resolve().parents[2] / "infra" / "events" / "rest-api-chat.json"


class _Context:
    aws_request_id = "lambda-req-1"
    function_name = "RouterFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:RouterFunction"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture(scope="module")
def handler_module(gateway: GatewayProcess) -> ModuleType:
    mp = pytest.MonkeyPatch()
    for name in ("EDGEROUTE_REGISTRY", "EDGEROUTE_SQLITE_PATH"):
        mp.setenv(name, gateway.env[name])
    import edgeroute.handlers.api as module

    loaded = importlib.reload(module)
    mp.undo()
    return loaded


def _event(api_key: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(EVENT.read_text())
    event["headers"]["authorization"] = f"Bearer {api_key}"
    event["multiValueHeaders"]["authorization"] = [f"Bearer {api_key}"]  # what Mangum reads
    event.update(changes)
    return event


def _body(result: dict[str, Any]) -> Any:
    raw = result["body"]
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


def test_chat_completion_through_mangum(handler_module: ModuleType, api_key: str) -> None:
    result = handler_module.handler(_event(api_key), _Context())
    assert result["statusCode"] == 200, result
    assert result["headers"]["x-edgeroute-model"] == "smollm2-135m"
    assert result["headers"]["content-type"] == "application/json"
    body = _body(result)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"]


def test_bad_key_through_mangum(handler_module: ModuleType) -> None:
    result = handler_module.handler(_event("er-wrong"), _Context())
    assert result["statusCode"] == 401
    assert _body(result)["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(("key", "status"), [("valid", 200), ("er-wrong", 401)])
def test_mangum_requests_are_audited_with_api_gateways_address(
    handler_module: ModuleType, api_key: str, key: str, status: int
) -> None:
    with captured_audit() as lines:
        result = handler_module.handler(_event(api_key if key == "valid" else key), _Context())
    assert result["statusCode"] == status
    [record] = lines()
    assert record["request_id"] == result["headers"]["x-request-id"]
    assert record["status"] == status and record["endpoint"] == "/v1/chat/completions"
    assert record["client_address"] == "203.0.113.10"  # requestContext.identity.sourceIp
    assert bool(record["key_id"]) is (status == 200)


# What only classification and upstream calls need: a snapshotted init loads them, an
# on-demand init leaves them to the first request that does (handlers/api.py).
_DEFERRED = ("numpy", "onnxruntime", "sentencepiece", "aiohttp", "httpx")


@pytest.mark.parametrize("init_type", ["on-demand", "snap-start"])
def test_only_a_snapshotted_init_loads_the_edge_models_and_the_http_client(
    init_type: str, tmp_path: Path
) -> None:
    script = (
        "import gc, sys\n"
        "import edgeroute.handlers.api\n"
        "assert gc.isenabled() and gc.get_freeze_count() > 0, 'collector state after init'\n"
        "print(' '.join(m for m in sys.argv[1:] if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
        "EDGEROUTE_SQLITE_PATH": str(tmp_path / "store.db"),
        "EDGEROUTE_USAGE_SPOOL": "",
    }
    done = subprocess.run(
        [sys.executable, "-c", script, *_DEFERRED],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.split()
    assert loaded == ([] if init_type == "on-demand" else list(_DEFERRED))
