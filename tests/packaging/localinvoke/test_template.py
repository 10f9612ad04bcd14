"""Reading a function's settings from a SAM template, short tags and all."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.tools.localinvoke import TemplateError, invoke, list_functions, load_function

TEMPLATE = Path(__file__).parent / "template.yaml"
PARAMS = {"UpstreamUrl": "http://127.0.0.1:9999"}


def test_lists_functions() -> None:
    assert list_functions(TEMPLATE) == ["ContextFunction", "ImageFunction"]


def test_globals_merge_and_intrinsics_resolve() -> None:
    spec = load_function(TEMPLATE, "ContextFunction", parameters=PARAMS)

    assert spec.handler == "context_fn.handler"
    assert spec.code_uri == (TEMPLATE.parent / "handlers").resolve()
    assert spec.runtime == "python3.11"
    assert spec.timeout_s == 5  # the function's own value beats Globals
    assert spec.memory_mb == 256  # Globals, via FindInMap on the Stage default
    assert spec.function_name == "edgeroute-dev-context"
    assert spec.layers == ["DepsLayer", "arn:aws:lambda:us-east-1:123456789012:layer:extra:1"]
    assert spec.environment == {
        "LOG_LEVEL": "INFO",
        "STAGE": "dev",
        "TABLE_NAME": "KeysTable",
        "SHARED": "from-function",
        "BUCKET_ARN": "Bucket.Arn",
        "QUEUE_URL": "JobsQueue.QueueUrl",
        "TABLE_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/KeysTable",
        "LITERAL": "${NotSubstituted}",
        "UPSTREAM": "http://127.0.0.1:9999",
        "DEBUG": "true",
        "JOINED": "a,dev,c",
        "RETRIES": "3",
        "EXPORTED": "<Fn::ImportValue>",
    }
    assert spec.unresolved == ["Fn::ImportValue"]


def test_overrides_for_parameters_and_resources() -> None:
    spec = load_function(
        TEMPLATE,
        "ContextFunction",
        parameters={**PARAMS, "Stage": "prod"},
        resources={"KeysTable": "edgeroute-keys-local", "Bucket.Arn": "arn:aws:s3:::local"},
        region="eu-west-1",
    )
    env = spec.environment
    assert env["TABLE_NAME"] == "edgeroute-keys-local"
    assert env["TABLE_ARN"].startswith("arn:aws:dynamodb:eu-west-1:")
    assert env["TABLE_ARN"].endswith(":table/edgeroute-keys-local")
    assert env["BUCKET_ARN"] == "arn:aws:s3:::local"
    assert env["DEBUG"] == "false" and env["OPTIONAL"] == "set-in-prod"
    assert spec.memory_mb == 1024 and spec.function_name == "edgeroute-prod-context"


def test_errors_name_the_problem() -> None:
    with pytest.raises(TemplateError, match="UpstreamUrl has no Default"):
        load_function(TEMPLATE, "ContextFunction")
    with pytest.raises(TemplateError, match="not a function"):
        load_function(TEMPLATE, "KeysTable", parameters=PARAMS)
    with pytest.raises(TemplateError, match="image function"):
        load_function(TEMPLATE, "ImageFunction")


def test_template_spec_drives_a_local_invoke() -> None:
    spec = load_function(TEMPLATE, "ContextFunction", parameters=PARAMS)
    assert spec.code_uri is not None
    result = invoke(
        spec.handler,
        {},
        code_dirs=[spec.code_uri],
        env=spec.environment,
        timeout_s=spec.timeout_s,
        function_name=spec.function_name,
        memory_mb=spec.memory_mb,
    )
    assert result.ok
    assert result.payload["function_name"] == "edgeroute-dev-context"
    assert result.payload["memory_limit_in_mb"] == "256"
    assert 0 < result.payload["remaining_ms"] <= 5000
