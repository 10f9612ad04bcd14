"""DynamoDB table names, and local tables created from the one declaration in template.yaml.

Lambda functions get each table's name from an environment variable that the
template fills in (``EDGEROUTE_TABLE_KEYS`` ...; ``TableNames`` lives with the
settings). Local servers and tests create their tables here by reading
template.yaml, so the schema is written once.

    python -m edgeroute.store.tables --endpoint-url http://127.0.0.1:5000 --prefix dev
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# Re-exported: the template tooling and its tests name tables by role.
from edgeroute.settings import TableNames as TableNames

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"

# Properties CreateTable takes as they are written in the template.
_GSI_FIELDS = ("IndexName", "KeySchema", "Projection")


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that accepts CloudFormation short tags (``!Sub``, ``!Ref``, ``!GetAtt``)."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: str | Path | None = None) -> dict[str, Any]:
    with open(path or DEFAULT_TEMPLATE, encoding="utf-8") as fh:
        # A SafeLoader subclass (it only adds CloudFormation's short tags).
        data = yaml.load(fh, Loader=_TemplateLoader)  # nosec B506
    if not isinstance(data, dict):
        raise ValueError(f"{path or DEFAULT_TEMPLATE} is not a CloudFormation template")
    return data


def table_properties(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Properties of every ``AWS::DynamoDB::Table`` resource, by logical id."""
    return {
        name: dict(res.get("Properties", {}))
        for name, res in template.get("Resources", {}).items()
        if res.get("Type") == "AWS::DynamoDB::Table"
    }


def create_table_request(name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """The CreateTable arguments for one template table (tags, SSE and PITR stay in
    CloudFormation: local servers do not need them)."""
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    gsis = props.get("GlobalSecondaryIndexes")
    if gsis:
        request["GlobalSecondaryIndexes"] = [
            {k: gsi[k] for k in _GSI_FIELDS if k in gsi} for gsi in gsis
        ]
    return request


def create_tables(client: Any, names: TableNames, template_path: str | Path | None = None) -> None:
    """Create every table declared in the template under the given names, with TTL."""
    props_by_id = table_properties(load_template(template_path))
    for role, table_name in names.by_role().items():
        props = props_by_id.get(TableNames.logical_id(role))
        if props is None:
            raise ValueError(f"template.yaml declares no {TableNames.logical_id(role)}")
        client.create_table(**create_table_request(table_name, props))
        client.get_waiter("table_exists").wait(
            TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )


def main(argv: list[str] | None = None) -> None:
    import boto3

    parser = argparse.ArgumentParser(description="create edgeroute's tables from template.yaml")
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))
    parser.add_argument("--prefix", default="edgeroute-local")
    parser.add_argument("--template", default=str(DEFAULT_TEMPLATE))
    args = parser.parse_args(argv)
    names = TableNames.with_prefix(args.prefix)
    create_tables(boto3.client("dynamodb", endpoint_url=args.endpoint_url), names, args.template)
    for var, value in names.as_env().items():
        print(f"export {var}={value}")


if __name__ == "__main__":
    main()
