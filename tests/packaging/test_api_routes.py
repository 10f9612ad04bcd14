"""One base URL: every route the app serves is reachable through the stack's one REST API,
behind the authorizer (but /healthz), and the routes that may stream go to StreamFunction
through a streaming integration; checked on what SAM's transform makes of template.yaml
(the CloudFormation `sam deploy` submits), which is also linted as such.

What these cannot show offline: that API Gateway routes, authorizes and streams as the
generated definition says (docs/deploy.md lists it as unverified until deployed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from edgeroute.api.app import create_app
from edgeroute.errors import AuthenticationFailed
from edgeroute.handlers.policies import deny
from tests.packaging.conftest import REPO, SAM, TEMPLATE
from tests.support.inprocess import memory_gateway

REGISTRY = "models:\n  - {name: tiny, endpoint: 'http://small:1/v1', tier: small}\n"
ANY = "x-amazon-apigateway-any-method"
# The dashboard's pages check the admin key or a session cookie themselves (api/dashboard).
UNAUTHENTICATED = {
    ("GET", "/healthz"),
    ("GET", "/dashboard"),
    ("GET", "/dashboard/data"),
    ("POST", "/dashboard/session"),
}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """template.yaml after the SAM transform."""
    if not SAM.exists():
        pytest.fail(f"{SAM} is missing: `make sam-cli` installs SAM CLI in its own venv")
    out = tmp_path_factory.mktemp("transform") / "template.json"
    done = subprocess.run(
        [str(SAM.with_name("python")), str(Path(__file__).with_name("sam_transform.py")),
         str(TEMPLATE), str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    transformed: dict[str, Any] = json.loads(out.read_text())
    return transformed


def _flat(routes: list[Any]) -> list[Any]:
    """The app's routes, with those of included routers (FastAPI keeps an included
    router as one entry, its ``original_router``; none of edgeroute's has a prefix)."""
    flat = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += _flat(list(included.routes)) if included is not None else [route]
    return flat


def _served() -> list[tuple[str, str, bool]]:
    """(method, path, may stream) for every route the app answers, with a sample value
    for each path parameter (as a caller sends it): the routes its OpenAPI document
    declares, and the documentation routes outside it."""
    app = create_app(memory_gateway(REGISTRY))
    served = []
    for template, operations in app.openapi()["paths"].items():
        path = re.sub(r"\{[^}]+\}", "sample", template)
        for method, operation in operations.items():
            content = operation["responses"].get("200", {}).get("content", {})
            served.append((method.upper(), path, "text/event-stream" in content))
    for route in _flat(app.routes):
        if isinstance(route, Route) and not route.include_in_schema:
            served += [(m, route.path, False) for m in sorted(route.methods or ()) if m != "HEAD"]
    return served


def _resolve(paths: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    """The operation a REST API runs for ``method path``: a resource whose path is the
    request's wins; else the deepest greedy ``{proxy+}`` resource above it."""
    candidates = [path] if path in paths else []
    parts = path.strip("/").split("/")
    for depth in range(len(parts) - 1, -1, -1):
        candidates.append("/" + "/".join([*parts[:depth], "{proxy+}"]))
    for resource in candidates:
        item = paths.get(resource) or {}
        operation = item.get(method.lower()) or item.get(ANY)
        if operation:
            return dict(operation)
    return None


def _target(operation: dict[str, Any]) -> str:
    return json.dumps(operation["x-amazon-apigateway-integration"]["uri"])


def test_one_api_serves_every_route_behind_the_authorizer(deployed: dict[str, Any]) -> None:
    apis = [r for r in deployed["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    assert len(apis) == 1
    assert not [r for r in deployed["Resources"].values() if r["Type"] == "AWS::Lambda::Url"]
    body = apis[0]["Properties"]["Body"]
    schemes = body["components"]["securitySchemes"]
    assert set(schemes) == {"KeyAuthorizer", "ApiKeyHeaderAuthorizer"}
    headers = {"KeyAuthorizer": "Authorization", "ApiKeyHeaderAuthorizer": "x-api-key"}
    for name, header in headers.items():
        authorizer = schemes[name]["x-amazon-apigateway-authorizer"]
        assert authorizer["type"] == "request"
        assert "AuthorizerFunctionAliaslive" in json.dumps(authorizer["authorizerUri"])
        assert f"method.request.header.{header}" in authorizer["identitySource"]
    served = _served()
    assert ("POST", "/v1/chat/completions", True) in served
    assert ("GET", "/v1/models/sample", False) in served
    for method, path, streams in served:
        operation = _resolve(body["paths"], method, path)
        assert operation is not None, f"{method} {path} has no route through the API"
        security = operation["security"]
        if (method, path) in UNAUTHENTICATED:
            assert security == [{"NONE": []}]
        else:
            # Anthropic's clients send x-api-key; every other route takes the bearer key.
            anthropic = path.startswith("/v1/messages")
            expected = "ApiKeyHeaderAuthorizer" if anthropic else "KeyAuthorizer"
            assert security == [{expected: []}], f"{method} {path}"
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy"
        if streams:
            assert integration["responseTransferMode"] == "STREAM", path
            assert "/2021-11-15/functions/${StreamFunction.Arn}/response-streaming-invocations" in (
                _target(operation)
            )
            assert integration["timeoutInMillis"] == 900_000
        else:
            assert "responseTransferMode" not in integration, path
            assert "RouterFunctionAliaslive" in _target(operation), path


def test_the_api_has_no_route_the_app_does_not_serve(deployed: dict[str, Any]) -> None:
    """Every explicit resource of the API is a route of the app (a renamed route cannot
    leave a stale streaming integration behind)."""
    [api] = [r for r in deployed["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    served = {path for _, path, _ in _served()}
    explicit = {p for p in api["Properties"]["Body"]["paths"] if "{proxy+}" not in p}
    assert explicit <= served


def test_the_deployed_template_passes_cfn_lint(deployed: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "deployed.json"
    out.write_text(json.dumps(deployed))
    # Two warnings are the transform's, not the template's: W1020 for the Fn::Sub SAM
    # writes without variables, W2001 for AuthorizerCacheTtl, which the transform
    # replaces by its value (CloudFormation runs it with the stack's parameter values).
    ignored = ["--ignore-checks", "W1020", "W2001"]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(out), *ignored],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_sam_validate_lint_passes() -> None:
    done = subprocess.run(
        [str(SAM), "validate", "--lint", "--template", str(TEMPLATE), "--region", "us-east-1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "SAM_CLI_TELEMETRY": "0"},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _rendered(template: str, context: dict[str, str]) -> Any:
    """A gateway response template as API Gateway fills it: $context.authorizer.X from
    the authorizer's context."""
    return json.loads(
        re.sub(r"\$context\.authorizer\.(\w+)", lambda m: context.get(m.group(1), ""), template)
    )


def test_a_denied_key_gets_the_error_the_app_would_give(deployed: dict[str, Any]) -> None:
    refused = AuthenticationFailed('Unknown key "er-x": create one with edgeroute keys create.')
    answer = deny("arn:aws:execute-api:us-east-1:1:abc/dev/POST/v1/chat/completions", refused)
    [api] = [r for r in deployed["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    responses = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    response = responses["ACCESS_DENIED"]["responseTemplates"]["application/json"]
    assert responses["ACCESS_DENIED"]["statusCode"] == "403"
    body = _rendered(response, answer["context"])
    expected = refused.body()["error"]
    assert body["error"] == {**expected, "message": expected["message"].replace('"', "'")}
