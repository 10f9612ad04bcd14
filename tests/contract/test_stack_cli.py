"""`edgeroute --stack NAME keys ...` against moto's CloudFormation, DynamoDB and S3: the
tables and the bucket come from the stack's outputs, no EDGEROUTE_TABLE_* is needed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from edgeroute.settings import Settings, TableNames
from edgeroute.store.dynamodb import DynamoDBStore, shared_client
from edgeroute.store.tables import create_tables
from edgeroute.tools.cli import main
from edgeroute.tools.stack import BUCKET_OUTPUT, REGISTRY_KEY, table_output
from tests.support.moto_server import AWS_ENV, MotoServer

REPO = Path(__file__).resolve().parents[2]
Cli = Callable[..., tuple[int, str, str]]


def _stack_template(outputs: dict[str, str]) -> str:
    """A stack whose outputs carry the names, as template.yaml's do once deployed."""
    return json.dumps(
        {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
    )


@pytest.fixture
def deployed(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    moto_server.reset()
    for var, value in AWS_ENV.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    for var in [*TableNames.with_prefix("x").as_env(), "EDGEROUTE_STORE", "EDGEROUTE_REGISTRY"]:
        monkeypatch.delenv(var, raising=False)
    prefix = f"stk-{uuid.uuid4().hex[:8]}"
    names = TableNames.with_prefix(prefix)
    create_tables(shared_client(moto_server.url, AWS_ENV["AWS_DEFAULT_REGION"]), names)
    bucket = f"{prefix}-bucket"
    boto3.client("s3").create_bucket(Bucket=bucket)
    outputs = {table_output(r): name for r, name in names.by_role().items()}
    outputs[BUCKET_OUTPUT] = bucket
    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName=prefix, TemplateBody=_stack_template(outputs))
    cfn.create_stack(StackName=prefix + "-old", TemplateBody=_stack_template({"ApiUrl": "x"}))
    return {"stack": prefix, "names": names, "bucket": bucket}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _stored_keys(names: TableNames) -> list[str]:
    async def listing() -> list[str]:
        store = DynamoDBStore(names)
        try:
            return [k.name for k in await store.list_keys()]
        finally:
            await store.close()

    return asyncio.run(listing())


def test_keys_of_a_stack_from_its_outputs(deployed: dict[str, Any], cli: Cli) -> None:
    stack = deployed["stack"]
    code, out, err = cli("--stack", stack, "keys", "create", "--name", "ops", "--json")
    assert code == 0, err
    assert _stored_keys(deployed["names"]) == ["ops"]
    code, out, _ = cli("--stack", stack, "keys", "list")
    assert code == 0 and json.loads(out)["name"] == "ops"
    code, _, err = cli("--stack", stack, "keys", "create", "--name", "ops")
    assert code == 2 and "already has a key named 'ops'" in err
    code, out, _ = cli("--stack", stack, "keys", "revoke", "ops")
    assert code == 0 and "revoked" in out


def test_models_are_checked_against_the_stack_registry(deployed: dict[str, Any], cli: Cli) -> None:
    stack = deployed["stack"]
    # Nothing uploaded: the registry shipped with the function (the repository's default).
    code, _, err = cli("--stack", stack, "keys", "create", "--name", "a", "--models", "qwen3")
    assert code == 0, err
    models = yaml.safe_load((REPO / "infra" / "models.yaml").read_text())["models"]
    small = next(m for m in models if m["name"] == "smollm2-135m")
    uploaded = {**small, "name": "stack-small", "aliases": [], "fallbacks": []}
    body = yaml.safe_dump({"models": [uploaded]}).encode()
    boto3.client("s3").put_object(Bucket=deployed["bucket"], Key=REGISTRY_KEY, Body=body)
    code, _, err = cli("--stack", stack, "keys", "create", "--name", "b", "--models", "qwen3")
    assert code == 2 and "known models: stack-small" in err
    code, _, err = cli("--stack", stack, "keys", "create", "--name", "b", "--models", "stack-small")
    assert code == 0, err


def test_a_stack_that_is_not_there_or_lacks_outputs(deployed: dict[str, Any], cli: Cli) -> None:
    code, _, err = cli("--stack", "no-such-stack", "keys", "list")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --stack no-such-stack:") and "does not exist" in err
    code, _, err = cli("--stack", deployed["stack"] + "-old", "keys", "list")
    assert code == 2 and err.count("\n") == 1
    assert "has no output KeysTableName" in err and "sam deploy" in err


def test_settings_name_the_stack_tables(deployed: dict[str, Any]) -> None:
    from edgeroute.tools.stack import stack_settings

    settings = stack_settings(Settings(), deployed["stack"])
    assert settings.store == "dynamodb" and settings.tables() == deployed["names"]
    assert settings.audit.bucket == deployed["bucket"]
