"""Least exposure, probed as an attacker would: every failure the real gateway can be
driven into answers in OpenAI's shape without naming an upstream's URL or host, a
credential's variable or secret, an AWS account or resource, or a stack trace (those
go to the server log, under the request id); `edgeroute serve` never logs a key; its
store and key files are readable by their owner only."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import GatewayProcess
from tests.support.moto_server import AWS_ENV, MotoServer
from tests.support.openai_sdk import OPENAI_ERROR_TYPES

UNSET_VARIABLE = "EDGEROUTE_EXPOSURE_UPSTREAM_TOKEN"
SECRET_NAME = "edgeroute/prod/internal-upstream-token"
ACCOUNT = "123456789012"
PROFILE = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/internal"
SAGEMAKER_ENDPOINT = "internal-llama-endpoint"
UNREACHABLE = "http://127.0.0.1:9"


def _registry(fault_url: str) -> dict[str, object]:
    def fault(name: str, behaviour: str, **extra: object) -> dict[str, object]:
        return fault_model(name, fault_url, behaviour, **extra)

    def aws(name: str, protocol: str, upstream: str) -> dict[str, object]:
        timeouts = {"connect": 1, "read": 1, "total": 3}
        return fault_model(name, UNREACHABLE, upstream, protocol=protocol, timeouts=timeouts)

    return {
        "models": [
            fault("broken", "status-500"),
            fault("overloaded", "status-503"),
            fault("hangs", "timeout", timeouts={"connect": 1, "read": 1, "total": 2}),
            fault("resets", "reset"),
            fault_model("unreachable", UNREACHABLE + "/v1", "instant"),
            fault("cuts", "cut"),
            fault("malformed", "malformed"),
            fault("stream-error", "stream-error"),
            fault("stalls", "stall", timeouts={"connect": 1, "read": 1, "total": 10}),
            fault("fragile", "status-500#circuit"),
            # Credential failures count against the target's circuit: one each.
            fault("env-credential", "instant#env", credential={"env": UNSET_VARIABLE}),
            fault("secret-credential", "instant#secret", credential={"secret": SECRET_NAME}),
            aws("bedrock-down", "bedrock", PROFILE),
            aws("sagemaker-down", "sagemaker", SAGEMAKER_ENDPOINT),
        ]
    }


@pytest.fixture(scope="module")
def state(workdir: Path) -> Path:
    """The folder `edgeroute serve` keeps its store and key in; it creates it."""
    return workdir / "exposure" / "state"


@pytest.fixture(scope="module")
def exposed(
    fault_upstream: FaultUpstream, moto_server: MotoServer, workdir: Path, state: Path
) -> Iterator[GatewayProcess]:
    registry = workdir / "exposure-models.yaml"
    registry.write_text(yaml.safe_dump(_registry(fault_upstream.url)))
    env = {
        **AWS_ENV,
        # Secrets Manager is moto, which has no such secret; no instance metadata look-ups.
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_server.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(state / "edgeroute.db"),
    }
    previous = os.umask(0o022)  # the usual umask: new files readable by all unless asked
    try:
        process = GatewayProcess(env, workdir).start()
    finally:
        os.umask(previous)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def key(exposed: GatewayProcess) -> str:
    return str(exposed.create_key("exposure")["api_key"])


def internal_names(fault_upstream: FaultUpstream) -> list[str]:
    """What an error body must never hold."""
    return [
        f"127.0.0.1:{fault_upstream.port}",
        "127.0.0.1:9",
        "http://",
        UNSET_VARIABLE,
        SECRET_NAME,
        ACCOUNT,
        PROFILE,
        SAGEMAKER_ENDPOINT,
        "us-east-1",
        "Traceback",
        "Error:",  # an exception's class and text, as in "ConnectionRefusedError: ..."
    ]


def _post(gateway: GatewayProcess, key: str, model: str, stream: bool) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _error_of(response: httpx.Response) -> dict[str, Any]:
    """The OpenAI error in a response: its JSON body, or a stream's error event."""
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        error: dict[str, Any] = json.loads(events[-1])["error"]
        return error
    assert response.status_code >= 400, response.text
    body: dict[str, Any] = response.json()["error"]
    return body


# Failing however they are called, and (the stream faults) only when streamed.
FAILING = [
    "broken",
    "overloaded",
    "hangs",
    "resets",
    "unreachable",
    "env-credential",
    "secret-credential",
    "bedrock-down",
    "sagemaker-down",
]
FAILING_MID_STREAM = ["cuts", "malformed", "stream-error", "stalls"]
CASES = [
    *((model, stream) for model in FAILING for stream in (False, True)),
    *((model, True) for model in FAILING_MID_STREAM),
]


@pytest.mark.parametrize(("model", "stream"), CASES)
def test_failure_bodies_name_no_internals(
    exposed: GatewayProcess, key: str, fault_upstream: FaultUpstream, model: str, stream: bool
) -> None:
    response = _post(exposed, key, model, stream)
    error = _error_of(response)
    leaked = [name for name in internal_names(fault_upstream) if name in response.text]
    assert not leaked, f"{model} answered {response.text!r}"
    assert f"'{model}'" in error["message"]  # the name the caller used is theirs to read
    assert error["type"] in OPENAI_ERROR_TYPES


def test_an_open_circuit_names_no_endpoint(
    exposed: GatewayProcess, key: str, fault_upstream: FaultUpstream
) -> None:
    for _ in range(3):  # the policy's failures_to_open
        assert _post(exposed, key, "fragile", False).status_code == 502
    paused = _post(exposed, key, "fragile", False)
    assert _error_of(paused)["code"] == "circuit_open"
    assert not [name for name in internal_names(fault_upstream) if name in paused.text]


@pytest.mark.parametrize(
    ("model", "stream", "logged"),
    [
        ("unreachable", False, UNREACHABLE),
        ("secret-credential", False, SECRET_NAME),
        ("env-credential", False, UNSET_VARIABLE),
        ("bedrock-down", False, PROFILE),
        ("stream-error", True, "model crashed"),
    ],
)
def test_the_detail_is_in_the_server_log_under_the_request_id(
    exposed: GatewayProcess, key: str, model: str, stream: bool, logged: str
) -> None:
    response = _post(exposed, key, model, stream)
    request_id = response.headers["x-request-id"]
    assert logged not in response.text
    lines = [line for line in exposed.log.read_text().splitlines() if request_id in line]
    assert any(logged in line for line in lines), lines


def test_serve_logs_where_the_dev_key_is_never_a_key(
    exposed: GatewayProcess, key: str, state: Path
) -> None:
    assert _post(exposed, key, "unreachable", False).status_code == 503  # something to log
    dev_key = (state / "dev-key").read_text().strip()
    log = exposed.log.read_text()
    assert dev_key.startswith("er-") and dev_key not in log
    assert key not in log
    assert str(state / "dev-key") in log  # where to find it instead


def test_store_and_key_files_are_the_owners_only(exposed: GatewayProcess, state: Path) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    files = ["dev-key", "edgeroute.db", "edgeroute.db-wal", "edgeroute.db-shm"]
    assert {name: mode(state / name) for name in files} == dict.fromkeys(files, 0o600)
    assert mode(state) == 0o700 and mode(state.parent) == 0o700  # both created by edgeroute
