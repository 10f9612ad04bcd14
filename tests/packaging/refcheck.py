"""Every name a template refers to, checked against what the template defines.

cfn-lint checks references in the CloudFormation it gets after the SAM transform, but
it misses ``!Ref`` to a missing resource inside SAM event sources and Globals. This
walks the template as written, everywhere, with SAM's generated names understood.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)
# Attributes !GetAtt may read, per resource type (the ones this project uses or may).
ATTRIBUTES: dict[str, frozenset[str]] = {
    "AWS::Serverless::Function": frozenset({"Arn"}),
    "AWS::Lambda::Url": frozenset({"FunctionUrl", "FunctionArn"}),
    "AWS::IAM::Role": frozenset({"Arn", "RoleId"}),
    "AWS::DynamoDB::Table": frozenset({"Arn", "StreamArn"}),
    "AWS::S3::Bucket": frozenset({"Arn", "DomainName", "RegionalDomainName"}),
    "AWS::Serverless::HttpApi": frozenset({"ApiEndpoint", "ApiId"}),
    "AWS::Serverless::Api": frozenset({"RootResourceId", "RestApiId"}),
    "AWS::Serverless::LayerVersion": frozenset(),
}
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def sam_generated(resources: dict[str, Any]) -> dict[str, str]:
    """Resources SAM adds that a template may reference: ``Fn.Alias``/``Fn.Version``
    (AutoPublishAlias), ``FnUrl`` (FunctionUrlConfig), ``FnRole`` (no Role given) and
    ``Api.Stage``/``Api.Deployment`` (every AWS::Serverless::Api)."""
    generated: dict[str, str] = {}
    for name, res in resources.items():
        if res.get("Type") == "AWS::Serverless::Api":
            generated[f"{name}.Stage"] = "AWS::ApiGateway::Stage"
            generated[f"{name}.Deployment"] = "AWS::ApiGateway::Deployment"
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        if props.get("AutoPublishAlias"):
            generated[f"{name}.Alias"] = "AWS::Lambda::Alias"
            generated[f"{name}.Version"] = "AWS::Lambda::Version"
        if props.get("FunctionUrlConfig"):
            generated[f"{name}Url"] = "AWS::Lambda::Url"
        if not props.get("Role"):
            generated[f"{name}Role"] = "AWS::IAM::Role"
    return generated


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, intrinsic, argument) for every Ref, GetAtt, Sub and Condition use."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, f"{path}[{i}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("Ref", "Fn::GetAtt", "Fn::Sub", "Condition", "Fn::If"):
                yield path, key, value
            yield from _walk(value, f"{path}.{key}")


def problems(template: dict[str, Any]) -> list[str]:
    """One message per reference that resolves to nothing; empty when all resolve."""
    parameters = set(template.get("Parameters") or {})
    conditions = set(template.get("Conditions") or {})
    resources: dict[str, Any] = template.get("Resources") or {}
    types = {name: str(res.get("Type")) for name, res in resources.items()}
    types.update(sam_generated(resources))
    names = parameters | set(types) | PSEUDO_PARAMETERS
    found: list[str] = []

    def check_getatt(path: str, target: str, attr: str) -> None:
        if target not in types:
            found.append(f"{path}: !GetAtt {target}.{attr}: no such resource")
            return
        allowed = ATTRIBUTES.get(types[target])
        if allowed is not None and attr not in allowed:
            found.append(f"{path}: !GetAtt {target}.{attr}: {types[target]} has no {attr}")

    for section in ("Globals", "Resources", "Outputs", "Conditions"):
        for path, fn, arg in _walk(template.get(section) or {}, section):
            if fn == "Ref":
                if not isinstance(arg, str) or arg not in names:
                    found.append(f"{path}: !Ref {arg}: no such parameter or resource")
            elif fn == "Fn::GetAtt":
                target, attr = arg.split(".", 1) if isinstance(arg, str) else (arg[0], arg[1])
                check_getatt(path, str(target), str(attr))
            elif fn == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                for var in _SUB_VAR.findall(str(text)):
                    if var.startswith("!") or var in local or var in names:
                        continue
                    if "." in var and var.split(".", 1)[0] in types:
                        check_getatt(path, *var.split(".", 1))
                        continue
                    found.append(f"{path}: ${{{var}}} in !Sub: no such parameter or resource")
            elif fn == "Condition" and isinstance(arg, str) and arg not in conditions:
                found.append(f"{path}: condition {arg} is not defined")
            elif fn == "Fn::If" and isinstance(arg, list) and arg and arg[0] not in conditions:
                found.append(f"{path}: !If on condition {arg[0]}, which is not defined")
    return found
