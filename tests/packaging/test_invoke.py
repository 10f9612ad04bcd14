"""`edgeroute invoke` (tools.invoke.run_invoke): template.yaml's functions, built by `sam
build`, run under the real awslambdaric on the sample events in infra/events, against
DynamoDB (moto's server) and llama.cpp's server as the upstream."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from edgeroute.store.s3 import make_s3_client
from edgeroute.tools.invoke import function_environment, run_invoke, table_resources
from tests.packaging.conftest import REPO, TEMPLATE, LocalStack, SamBuild, put_key

EVENTS = REPO / "infra" / "events"


def _invoke(
    capsys: pytest.CaptureFixture[str],
    name: str,
    event: Path,
    build: SamBuild | None,
    **overrides: str,
) -> tuple[int, Any, str]:
    code = run_invoke(
        name,
        str(event),
        template=str(TEMPLATE),
        build_dir=str(build.build_dir) if build else None,
        env_overrides=dict(overrides),
    )
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _event_file(tmp_path: Path, source: str, **changes: Any) -> Path:
    event = json.loads((EVENTS / source).read_text())
    for dotted, value in changes.items():
        node = event
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    path = tmp_path / source
    path.write_text(json.dumps(event))
    return path


def _bearer(secret: str) -> dict[str, Any]:
    """The REST API event changes that carry ``secret`` (Mangum reads multiValueHeaders)."""
    header = f"Bearer {secret}"
    return {"headers__authorization": header, "multiValueHeaders__authorization": [header]}


@pytest.fixture(scope="module")
def policy_env() -> dict[str, str]:
    # The routing policy file, where the code under test reads one.
    policy = REPO / "infra" / "routing.yaml"
    return {"EDGEROUTE_POLICY": str(policy)} if policy.is_file() else {}


def test_router_answers_a_chat_completion(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    sam_build: SamBuild,
    local_stack: LocalStack,
    llama_url: str,
    policy_env: dict[str, str],
) -> None:
    secret, _ = put_key(local_stack, "invoke-router")
    event = _event_file(tmp_path, "rest-api-chat.json", **_bearer(secret))
    code, payload, logs = _invoke(capsys, "RouterFunction", event, sam_build, **policy_env)
    assert code == 0, logs
    assert payload["statusCode"] == 200, payload
    body = json.loads(payload["body"])
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"]
    assert "Init Duration" in logs  # a cold start, reported as Lambda reports it


def test_router_starts_on_its_bundled_configuration_while_the_bucket_is_empty(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    sam_build: SamBuild,
    local_stack: LocalStack,
    llama_url: str,
) -> None:
    """A stack's first start: config/ in its bucket is still empty, as during the
    SnapStart publish of a first `sam deploy`; the built function's bundled registry
    (its smollm2-135m pointed at llama.cpp) answers."""
    bucket = f"empty-{uuid.uuid4().hex[:8]}"
    make_s3_client().create_bucket(Bucket=bucket)
    secret, _ = put_key(local_stack, "invoke-bootstrap")
    event = _event_file(tmp_path, "rest-api-chat.json", **_bearer(secret))
    code, payload, logs = _invoke(
        capsys,
        "RouterFunction",
        event,
        sam_build,
        EDGEROUTE_REGISTRY=f"s3://{bucket}/config/models.yaml",
        EDGEROUTE_POLICY=f"s3://{bucket}/config/routing.yaml",
        EDGEROUTE_LOCAL_LLM_URL=llama_url,
    )
    assert code == 0, logs
    assert payload["statusCode"] == 200, payload
    assert f"s3://{bucket}/config/models.yaml cannot serve" in logs
    assert str(sam_build.build_dir / "RouterFunction" / "edgeroute" / "config" / "bundled") in logs


def test_authorizer_allows_a_valid_key_and_denies_revoked_unknown_and_missing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    sam_build: SamBuild,
    local_stack: LocalStack,
) -> None:
    good, good_id = put_key(local_stack, "invoke-auth")
    revoked, _ = put_key(local_stack, "invoke-revoked", revoked=True)
    cases = {
        f"Bearer {good}": True,
        f"Bearer {revoked}": False,
        "Bearer er-not-a-key-anyone-minted": False,
    }
    for header, allowed in cases.items():
        event = _event_file(tmp_path, "rest-api-authorizer.json", headers__authorization=header)
        code, payload, logs = _invoke(capsys, "AuthorizerFunction", event, sam_build)
        assert code == 0, logs
        [statement] = payload["policyDocument"]["Statement"]
        assert statement["Effect"] == ("Allow" if allowed else "Deny"), (header, payload)
        if allowed:
            assert payload["context"] == {"key_id": good_id, "tenant": "invoke-auth", "scopes": ""}
        else:
            assert payload["context"]["error_type"] == "authentication_error"
    # No bearer credential: the error whose message API Gateway turns into its 401.
    event = _event_file(tmp_path, "rest-api-authorizer.json", headers__authorization="Basic eDp5")
    code, payload, logs = _invoke(capsys, "AuthorizerFunction", event, sam_build)
    assert code == 1 and payload["errorMessage"] == "Unauthorized", logs


def test_health_probe_writes_endpoint_health(
    capsys: pytest.CaptureFixture[str],
    sam_build: SamBuild,
    local_stack: LocalStack,
    llama_url: str,
) -> None:
    code, payload, logs = _invoke(
        capsys, "HealthProbeFunction", EVENTS / "schedule-health-probe.json", sam_build
    )
    assert code == 0, logs
    assert payload["endpoints"] >= 2  # llama.cpp, the fault upstream, an unreachable one
    assert "http://127.0.0.1:9/v1" in payload["down"]
    assert llama_url not in payload["down"]


def test_a_handler_exception_is_a_function_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, local_stack: LocalStack
) -> None:
    # Not an API Gateway event: Mangum cannot tell what to do with it and raises.
    event = tmp_path / "not-http.json"
    event.write_text(json.dumps({"hello": "world"}))
    code, payload, _ = _invoke(capsys, "RouterFunction", event, None)
    assert code == 1
    assert set(payload) >= {"errorMessage", "errorType"}


def test_an_init_failure_is_a_function_error(
    capsys: pytest.CaptureFixture[str], local_stack: LocalStack
) -> None:
    code, payload, logs = _invoke(
        capsys,
        "RouterFunction",
        EVENTS / "rest-api-chat.json",
        None,
        EDGEROUTE_REGISTRY="/nonexistent/models.yaml",
    )
    assert code == 1
    assert "registry file not found" in payload["errorMessage"], logs


def test_what_cannot_run_here_says_why(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run_invoke("StreamFunction", str(EVENTS / "rest-api-chat.json")) == 2
    assert "Lambda Web Adapter" in capsys.readouterr().err
    assert run_invoke("NoSuchFunction", str(EVENTS / "rest-api-chat.json")) == 2
    assert "not a function" in capsys.readouterr().err
    assert run_invoke("RouterFunction", str(tmp_path / "missing.json")) == 2
    assert "cannot read the event" in capsys.readouterr().err


def test_caller_settings_replace_template_placeholders() -> None:
    caller = {
        "EDGEROUTE_TABLE_KEYS": "local-keys",
        "EDGEROUTE_REGISTRY": "/tmp/models.yaml",
        "HOME": "/root",
    }
    assert table_resources(caller) == {"KeysTable": "local-keys"}
    env = function_environment(
        {"EDGEROUTE_REGISTRY": "s3://bucket/config/models.yaml", "LOG_LEVEL": "INFO"},
        caller,
        {"LOG_LEVEL": "DEBUG"},
    )
    assert env == {
        "EDGEROUTE_REGISTRY": "/tmp/models.yaml",
        "EDGEROUTE_TABLE_KEYS": "local-keys",
        "LOG_LEVEL": "DEBUG",
    }
