"""template.yaml reaches the GPU backends it is told about and nothing else: Bedrock and
SageMaker permissions on exactly the ARNs its parameters name (no policy when none are
named), and a VPC for the functions that call upstreams only when subnets and security
groups are both given. The template is resolved as CloudFormation would, per parameters."""

from __future__ import annotations

from typing import Any

import pytest

from edgeroute.tools.localinvoke.template import load_template, template_resolver
from tests.packaging.conftest import TEMPLATE

# They invoke Bedrock/SageMaker.
CALLERS = ("RouterFunction", "StreamFunction", "BatchFunction", "ResponsesWorkerFunction")
IN_VPC = (*CALLERS, "HealthProbeFunction")  # reach private endpoints (the probe: HTTP only)
ACCOUNT_ENDPOINT = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/"
BEDROCK_MODEL = (
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
)
BEDROCK_PROFILE = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-haiku-20241022-v1:0"
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _statements(template: dict[str, Any], **parameters: str) -> dict[str, Any] | None:
    """The upstream policy's statements by Sid, or None when the stack would not create it."""
    resolver = template_resolver(template, parameters)
    policy = template["Resources"]["UpstreamInvokePolicy"]
    if not resolver.condition(policy["Condition"]):
        return None
    document = resolver.resolve(policy["Properties"]["PolicyDocument"])
    return {statement["Sid"]: statement for statement in document["Statement"]}


def _attached(template: dict[str, Any], function: str, **parameters: str) -> bool:
    policies = template_resolver(template, parameters).resolve(
        template["Resources"][function]["Properties"]["Policies"]
    )
    return {"Ref": "UpstreamInvokePolicy"} in policies or "UpstreamInvokePolicy" in policies


def test_the_parameters_default_to_nothing(template: dict[str, Any]) -> None:
    for name in (
        "BedrockModelArns",
        "SageMakerEndpointNames",
        "VpcSubnetIds",
        "VpcSecurityGroupIds",
    ):
        spec = template["Parameters"][name]
        assert (spec["Type"], spec["Default"]) == ("CommaDelimitedList", ""), name


def test_no_names_no_policy_and_no_attachment(template: dict[str, Any]) -> None:
    assert _statements(template) is None
    for function in CALLERS:
        assert not _attached(template, function), function


def test_bedrock_arns_become_one_statement_on_exactly_those_arns(template: dict[str, Any]) -> None:
    statements = _statements(template, BedrockModelArns=f"{BEDROCK_MODEL},{BEDROCK_PROFILE}")
    assert statements == {
        "InvokeBedrockModels": {
            "Sid": "InvokeBedrockModels",
            "Effect": "Allow",
            "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "Resource": [BEDROCK_MODEL, BEDROCK_PROFILE],
        }
    }
    for function in CALLERS:
        assert _attached(template, function, BedrockModelArns=BEDROCK_MODEL), function
    assert "UpstreamInvokePolicy" not in str(template["Resources"]["AuthorizerFunction"])
    assert "UpstreamInvokePolicy" not in str(template["Resources"]["HealthProbeFunction"])


@pytest.mark.parametrize("count", [1, 2, 5, 8])
def test_sagemaker_names_become_endpoint_arns_in_this_account_and_region(
    template: dict[str, Any], count: int
) -> None:
    names = [f"llama-{i}" for i in range(count)]
    statements = _statements(template, SageMakerEndpointNames=",".join(names))
    assert statements == {
        "InvokeSageMakerEndpoints": {
            "Sid": "InvokeSageMakerEndpoints",
            "Effect": "Allow",
            "Action": ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"],
            "Resource": [ACCOUNT_ENDPOINT + name for name in names],
        }
    }
    for function in CALLERS:
        assert _attached(template, function, SageMakerEndpointNames=names[0]), function


def test_more_sagemaker_names_than_the_policy_holds_fail_the_deploy(
    template: dict[str, Any],
) -> None:
    """A ninth name would silently get no permission; an entry IAM refuses says why instead."""
    names = ",".join(f"e{i}" for i in range(9))
    statements = _statements(template, SageMakerEndpointNames=names)
    assert statements is not None
    resources = statements["InvokeSageMakerEndpoints"]["Resource"]
    assert resources[:8] == [ACCOUNT_ENDPOINT + f"e{i}" for i in range(8)]
    assert resources[8] == "SageMakerEndpointNames-lists-more-than-8-endpoints"


def test_both_kinds_of_upstream_together(template: dict[str, Any]) -> None:
    statements = _statements(template, BedrockModelArns=BEDROCK_MODEL, SageMakerEndpointNames="a")
    assert statements is not None
    assert set(statements) == {"InvokeBedrockModels", "InvokeSageMakerEndpoints"}
    assert statements["InvokeBedrockModels"]["Resource"] == [BEDROCK_MODEL]
    assert statements["InvokeSageMakerEndpoints"]["Resource"] == [ACCOUNT_ENDPOINT + "a"]


@pytest.mark.parametrize(
    ("subnets", "groups", "in_vpc"),
    [
        ("", "", False),
        ("subnet-1,subnet-2", "", False),
        ("", "sg-1", False),
        ("subnet-1,subnet-2", "sg-1", True),
    ],
)
def test_the_upstream_callers_join_a_vpc_only_when_told_where(
    template: dict[str, Any], subnets: str, groups: str, in_vpc: bool
) -> None:
    resolver = template_resolver(template, {"VpcSubnetIds": subnets, "VpcSecurityGroupIds": groups})
    for function in IN_VPC:
        props = resolver.resolve(template["Resources"][function]["Properties"])
        if in_vpc:
            assert props["VpcConfig"] == {
                "SubnetIds": ["subnet-1", "subnet-2"],
                "SecurityGroupIds": ["sg-1"],
            }, function
        else:
            assert "VpcConfig" not in props, function
    authorizer = resolver.resolve(template["Resources"]["AuthorizerFunction"]["Properties"])
    assert "VpcConfig" not in authorizer  # reads DynamoDB only: no VPC to configure
