"""The CloudFormation `sam deploy` submits for a template: SAM's own transform, run offline.

Run by SAM CLI's interpreter (.venv-sam/bin/python), which has samtranslator:
``python sam_transform.py TEMPLATE OUT.json``. Code and layer folders become placeholder
S3 URIs (what `sam package` puts there) and no AWS call is made, so the output is
what the transform makes of the template as written, with parameters at their defaults.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class _NoManagedPolicies:
    """The transform asks IAM for managed policy ARNs by name; the template names none."""

    def load(self) -> dict[str, str]:
        return {}

    def get_managed_policy_map(self) -> dict[str, str]:
        return {}


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """``template`` with its local code and layer folders replaced as `sam package` does."""
    template["Globals"]["Function"]["CodeUri"] = "s3://package-bucket/code.zip"
    for resource in template["Resources"].values():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = "s3://package-bucket/code.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://package-bucket/layer.zip"
    return template


def main() -> None:
    source, out = sys.argv[1], sys.argv[2]
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(source) as f:
        template = packaged(yaml_parse(f.read()))
    transformed = transform(template, {}, _NoManagedPolicies())
    with open(out, "w") as f:
        json.dump(transformed, f, indent=1, default=str)


if __name__ == "__main__":
    main()
