"""``edgeroute --stack NAME``: a deployed stack's table names and bucket, read from its
CloudFormation outputs, so operating it needs no ``EDGEROUTE_TABLE_*`` variables.

The outputs read are the ones template.yaml declares (``KeysTableName`` ... and
``BucketName``); variables set explicitly still win over what the stack says.
"""

from __future__ import annotations

from typing import Any

from edgeroute.errors import ConfigError
from edgeroute.settings import Settings, TableNames
from edgeroute.tools.arguments import UsageError

BUCKET_OUTPUT = "BucketName"
# Where docs/deploy.md uploads the registry; the functions read it from there.
REGISTRY_KEY = "config/models.yaml"


def table_output(role: str) -> str:
    """The stack output that names a role's table (``keys`` -> ``KeysTableName``)."""
    return TableNames.logical_id(role) + "Name"


def required_outputs() -> tuple[str, ...]:
    return (*(table_output(r) for r in TableNames.roles()), BUCKET_OUTPUT)


def stack_outputs(stack: str, client: Any = None) -> dict[str, str]:
    """The stack's outputs by key; a stack that does not exist, or lacks an output the
    CLI needs, is a usage error naming the stack and the fix."""
    import boto3
    from botocore.exceptions import ClientError

    client = client or boto3.client("cloudformation")
    try:
        stacks = client.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise UsageError(
            f"--stack {stack}: {message} (check the name, AWS_REGION and the credentials; "
            "'aws cloudformation list-stacks' lists them)"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [name for name in required_outputs() if not outputs.get(name)]
    if missing:
        raise UsageError(
            f"--stack {stack} has no output {', '.join(missing)}: deploy this version's "
            "template.yaml (sam deploy), or set EDGEROUTE_TABLE_* instead of --stack"
        )
    return outputs


def _registry_in(bucket: str) -> str | None:
    """The stack's ``s3://`` registry when it has been uploaded, else None."""
    from edgeroute.config.loading import version_of

    uri = f"s3://{bucket}/{REGISTRY_KEY}"
    try:
        version_of(uri, "registry file", "EDGEROUTE_REGISTRY")
    except ConfigError:
        return None
    return uri


def stack_settings(settings: Settings, stack: str, client: Any = None) -> Settings:
    """``settings`` pointed at the stack: its DynamoDB tables, its audit archive, and the
    registry it serves (the uploaded one; without one, the default shipped with it)."""
    outputs = stack_outputs(stack, client)
    bucket = outputs[BUCKET_OUTPUT]
    update: dict[str, Any] = {"store": "dynamodb"}
    if settings.table is None:
        update["table"] = TableNames(**{r: outputs[table_output(r)] for r in TableNames.roles()})
    if not settings.audit.bucket:
        update["audit"] = settings.audit.model_copy(update={"bucket": bucket})
    if "registry" not in settings.model_fields_set:
        update["registry"] = _registry_in(bucket) or settings.registry
    return settings.model_copy(update=update)
