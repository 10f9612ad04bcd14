"""template.yaml: linted by cfn-lint, every reference resolves, runtimes are real, the
pieces agree with the code (handlers exist, table variables match tables.py)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgeroute.store.tables import TableNames
from edgeroute.tools.localinvoke import load_function
from edgeroute.tools.localinvoke.template import load_template
from tests.packaging import refcheck
from tests.packaging.conftest import REPO, TEMPLATE

# Lambda's Python runtimes that accept new functions (docs: "Lambda runtimes").
LAMBDA_PYTHON_RUNTIMES = frozenset({"python3.10", "python3.11", "python3.12", "python3.13"})
SNAPSTART_PYTHON_RUNTIMES = frozenset({"python3.12", "python3.13"})
FUNCTIONS = (
    "RouterFunction",
    "AuthorizerFunction",
    "StreamFunction",
    "BatchFunction",
    "HealthProbeFunction",
    "ResponsesWorkerFunction",
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _props(template: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][name]["Properties"]
    return props


def test_cfn_lint_passes() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_reference_resolves(template: dict[str, Any]) -> None:
    assert refcheck.problems(template) == []


@pytest.mark.parametrize(
    ("where", "mutate"),
    [
        (
            "Globals env",
            lambda t: t["Globals"]["Function"]["Environment"]["Variables"].update(
                X={"Ref": "NoSuchTable"}
            ),
        ),
        (
            "S3 event source",
            lambda t: t["Resources"]["BatchFunction"]["Properties"]["Events"]["Upload"][
                "Properties"
            ].update(Bucket={"Ref": "NoSuchBucket"}),
        ),
        (
            "!Sub variable",
            lambda t: t["Outputs"].update(X={"Value": {"Fn::Sub": "${NoSuchThing}-x"}}),
        ),
        (
            "!GetAtt attribute",
            lambda t: t["Outputs"].update(X={"Value": {"Fn::GetAtt": ["KeysTable", "Nope"]}}),
        ),
        (
            "!If condition",
            lambda t: t["Outputs"].update(X={"Value": {"Fn::If": ["NoSuchCondition", 1, 2]}}),
        ),
    ],
)
def test_reference_check_catches_what_cfn_lint_misses(
    template: dict[str, Any], where: str, mutate: Any
) -> None:
    broken = copy.deepcopy(template)
    mutate(broken)
    assert len(refcheck.problems(broken)) == 1, where


def test_runtime_is_a_real_lambda_python_runtime(template: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        spec = load_function(TEMPLATE, name)
        assert spec.runtime in LAMBDA_PYTHON_RUNTIMES, (name, spec.runtime)
        assert spec.runtime == "python3.12", name  # the layer is built for 3.12 wheels
        props = _props(template, name)
        if "SnapStart" in props:
            assert spec.runtime in SNAPSTART_PYTHON_RUNTIMES, name
            assert props.get("AutoPublishAlias"), f"{name}: SnapStart needs published versions"
            assert "ProvisionedConcurrencyConfig" not in props, name


def test_handlers_exist_in_the_code(template: dict[str, Any]) -> None:
    code = REPO / "functions"
    for name in FUNCTIONS:
        handler = load_function(TEMPLATE, name).handler
        if handler.endswith(".py"):  # an executable for the Lambda Web Adapter
            path = code / handler
            assert path.is_file() and os.access(path, os.X_OK), f"{path} must be executable"
            assert path.read_text().startswith("#!/usr/bin/env python3\n")
            continue
        module, _, attr = handler.rpartition(".")
        source = (code / module.replace(".", "/")).with_suffix(".py")
        assert source.is_file(), f"{name}: {source} is missing"
        assert re.search(rf"^(def {attr}\(|{attr} = )", source.read_text(), re.M), handler


def test_every_function_gets_every_table_variable(template: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        env = load_function(TEMPLATE, name).environment
        for role in TableNames.roles():
            assert env[TableNames.env_var(role)] == TableNames.logical_id(role), (name, role)
        assert env["EDGEROUTE_STORE"] == "dynamodb"
        assert env["EDGEROUTE_REGISTRY"].startswith("s3://edgeroute-dev-")
        assert env["EDGEROUTE_POLICY"].endswith("/config/routing.yaml")
        assert env["POWERTOOLS_SERVICE_NAME"] == "edgeroute-dev"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "edgeroute"


def test_bucket_is_named_the_same_everywhere(template: dict[str, Any]) -> None:
    """The bucket is named, not referenced, in policies and variables (a !Ref there is a
    circular dependency with its notification); every such name must be the bucket's."""
    name = template["Resources"]["BatchBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    text = TEMPLATE.read_text()
    uses = re.findall(r"edgeroute-\$\{Stage\}-\$\{AWS::AccountId\}[^/\"*]*", text)
    assert len(uses) > 5 and {u.rstrip() for u in uses} == {name}, set(uses)
    ref = json.dumps({"Ref": "BatchBucket"})
    assert ref not in json.dumps(template["Globals"])
    for fn in FUNCTIONS:
        props = _props(template, fn)
        assert ref not in json.dumps([props.get("Policies"), props.get("Environment")]), fn


def test_authorizer_reads_keys_and_nothing_else(template: dict[str, Any]) -> None:
    policies = _props(template, "AuthorizerFunction")["Policies"]
    assert policies == [{"DynamoDBReadPolicy": {"TableName": {"Ref": "KeysTable"}}}]


def test_stream_function_runs_under_the_web_adapter(template: dict[str, Any]) -> None:
    props = _props(template, "StreamFunction")
    env = props["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    # REST API events put the stage in front of the path the adapter forwards.
    assert env["AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH"] == "true"
    # The function's timeout bounds a stream; the integration allows API Gateway's most.
    assert props["Timeout"] == {"Ref": "StreamTimeoutSeconds"}
    assert template["Parameters"]["StreamTimeoutSeconds"]["MaxValue"] == 900
    for event in props["Events"].values():
        assert event["Properties"]["ResponseTransferMode"] == "RESPONSE_STREAM"
        assert event["Properties"]["TimeoutInMillis"] == 900_000


def test_public_entry_points_are_throttled_and_logged(template: dict[str, Any]) -> None:
    api = _props(template, "RestApi")
    assert api["EndpointConfiguration"]["Type"] == "REGIONAL"  # edge ends idle streams at 30 s
    [throttle] = api["MethodSettings"]
    assert (throttle["ResourcePath"], throttle["HttpMethod"]) == ("/*", "*")
    assert throttle["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRate"}
    assert throttle["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurst"}
    logs = api["AccessLogSetting"]
    assert logs["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLog", "Arn"]}
    record = json.loads(logs["Format"])  # one JSON object per request
    assert {"requestId", "ip", "routeKey", "status", "keyId", "tenant"} <= set(record)
    assert not any("header" in v.lower() or "body" in v.lower() for v in record.values())
    assert _props(template, "ApiAccessLog")["RetentionInDays"] == {"Ref": "AccessLogRetentionDays"}
    # REST API access logs need the account's logs role: the stack's own, or the one given.
    account = _props(template, "ApiGatewayAccount")["CloudWatchRoleArn"]
    assert account == {
        "Fn::If": [
            "CreatesApiLogsRole",
            {"Fn::GetAtt": ["ApiLogsRole", "Arn"]},
            {"Ref": "ApiLogsRoleArn"},
        ]
    }
    assert template["Resources"]["RestApi"]["DependsOn"] == "ApiGatewayAccount"


def test_the_api_is_the_only_way_in(template: dict[str, Any]) -> None:
    """No Function URL beside the API (its authorizer would not sit in front of it), and
    the streaming function's concurrency is bounded."""
    for name in FUNCTIONS:
        assert "FunctionUrlConfig" not in _props(template, name), name
    assert "StreamUrlAuthType" not in template["Parameters"]
    props = _props(template, "StreamFunction")
    assert props["ReservedConcurrentExecutions"] == {"Ref": "StreamReservedConcurrency"}


def test_api_refusals_are_openai_errors(template: dict[str, Any]) -> None:
    responses = _props(template, "RestApi")["GatewayResponses"]
    statuses = {name: r["StatusCode"] for name, r in responses.items()}
    assert statuses == {
        "ACCESS_DENIED": "403",
        "UNAUTHORIZED": "401",
        "MISSING_AUTHENTICATION_TOKEN": "404",
        "THROTTLED": "429",
        "INTEGRATION_TIMEOUT": "504",
    }
    for name, response in responses.items():
        body = response["ResponseTemplates"]["application/json"]
        filled = re.sub(r"\$context\.[a-zA-Z_.]+", "x", body)
        error = json.loads(filled)["error"]  # valid JSON whatever the context holds
        assert set(error) == {"message", "type", "param", "code"}, name
    denied = responses["ACCESS_DENIED"]["ResponseTemplates"]["application/json"]
    assert "$context.authorizer.message" in denied and "$context.authorizer.code" in denied


def test_dashboard_body_is_json_with_the_four_views(template: dict[str, Any]) -> None:
    body = _props(template, "Dashboard")["DashboardBody"]["Fn::Sub"]
    filled = re.sub(r"\$\{[^}]+\}", "x", body)
    widgets = json.loads(filled)["widgets"]
    titles = " | ".join(w["properties"]["title"] for w in widgets)
    for view in ("Edge vs GPU share", "Cost by model", "p99", "Cache hit rate"):
        assert view in titles


def test_the_audit_archive_expires_and_only_request_functions_write_it(
    template: dict[str, Any],
) -> None:
    rules = _props(template, "BatchBucket")["LifecycleConfiguration"]["Rules"]
    [audit] = [r for r in rules if r.get("Prefix") == "audit/"]
    assert audit["Status"] == "Enabled"
    assert audit["ExpirationInDays"] == {"Ref": "AuditRetentionDays"}
    assert "NoncurrentVersionExpiration" in audit  # the bucket is versioned
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["EDGEROUTE_AUDIT_RETENTION_DAYS"] == {"Ref": "AuditRetentionDays"}
    assert env["EDGEROUTE_AUDIT_BUCKET"] == _props(template, "BatchBucket")["BucketName"]
    writers = set()
    for name in FUNCTIONS:
        for policy in _props(template, name)["Policies"]:
            for statement in policy.get("Statement", ()) if isinstance(policy, dict) else ():
                if "/audit/" in json.dumps(statement["Resource"]):
                    assert statement["Action"] == "s3:PutObject", name  # never read back
                    writers.add(name)
    assert writers == {
        "RouterFunction",
        "StreamFunction",
        "BatchFunction",
        "ResponsesWorkerFunction",
    }


def test_outputs_carry_what_the_cli_reads_for_a_stack(template: dict[str, Any]) -> None:
    """`edgeroute --stack NAME` reads the table names and the bucket from these outputs,
    `edgeroute deploy` the base URL as well."""
    from edgeroute.tools.deploy import placeholder_outputs
    from edgeroute.tools.stack import required_outputs

    assert set(required_outputs()) <= set(template["Outputs"])
    assert set(placeholder_outputs()) <= set(template["Outputs"])


def test_background_responses_run_in_their_worker_function(template: dict[str, Any]) -> None:
    """The request functions store Responses in the jobs table and may invoke exactly the
    worker function (asynchronously); the worker reads the same tables and sweeps on a
    schedule."""
    worker = {"Ref": "ResponsesWorkerFunction"}
    for name in ("RouterFunction", "StreamFunction"):
        props = _props(template, name)
        assert props["Environment"]["Variables"]["EDGEROUTE_RESPONSES_WORKER_FUNCTION"] == worker
        policies = [p for p in props["Policies"] if isinstance(p, dict)]
        assert {"LambdaInvokePolicy": {"FunctionName": worker}} in policies, name
        assert {"DynamoDBCrudPolicy": {"TableName": {"Ref": "JobsTable"}}} in policies, name
    props = _props(template, "ResponsesWorkerFunction")
    assert props["Handler"] == "edgeroute.handlers.background.handler"
    assert props["Timeout"] == 900
    assert "EDGEROUTE_RESPONSES_WORKER_FUNCTION" not in str(props)  # never invokes itself
    assert "LambdaInvokePolicy" not in str(props["Policies"])
    [sweep] = props["Events"].values()
    assert sweep["Type"] == "Schedule" and json.loads(sweep["Properties"]["Input"]) == {
        "sweep": True
    }
