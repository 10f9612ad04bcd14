"""``edgeroute deploy`` (``make deploy STACK=name``): a stack from nothing to a first call.

It runs ``sam build`` and ``sam deploy`` for the named stack, reads the stack's outputs,
uploads ``infra/models.yaml`` and ``infra/routing.yaml`` to ``config/`` in its bucket
(which override the copies bundled with the functions), mints a first admin key into
its keys table and prints the base URL. ``--dry-run`` prints each step as the shell
command that does the same and runs nothing: the outputs it would read appear as
``<OutputKey>`` placeholders. Every step is built by the same functions in both modes,
so the dry run shows what a real run does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeroute.settings import TableNames

REPO = Path(__file__).resolve().parents[3]
SAMCONFIG = "infra/samconfig.toml"
# infra/<file> -> config/<file> in the stack's bucket: what the template's
# EDGEROUTE_REGISTRY and EDGEROUTE_POLICY point at by default.
CONFIG_FILES = ("models.yaml", "routing.yaml")


@dataclass(frozen=True)
class Plan:
    """What to deploy: the stack, the samconfig environment, and what overrides it."""

    stack: str
    config_env: str = "default"
    region: str | None = None
    parameter_overrides: str | None = None
    admin_name: str = "admin"
    sam: str = "sam"


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def shell(self) -> str:
        """The command as one line of shell, its variables in front."""
        assignments = [f"{name}={shlex.quote(value)}" for name, value in self.env]
        return " ".join([*assignments, *(shlex.quote(part) for part in self.argv)])


class DeployError(Exception):
    """A step failed; the message says which and what to do."""


def _common(plan: Plan) -> list[str]:
    options = ["--config-file", SAMCONFIG, "--config-env", plan.config_env]
    return options + (["--region", plan.region] if plan.region else [])


def sam_commands(plan: Plan) -> list[Command]:
    """``sam build``, then ``sam deploy`` of ``plan.stack`` (its artifacts under its name)."""
    deploy = ["deploy", *_common(plan), "--stack-name", plan.stack, "--s3-prefix", plan.stack]
    if plan.parameter_overrides:  # replaces samconfig's parameter_overrides whole (SAM's rule)
        deploy += ["--parameter-overrides", plan.parameter_overrides]
    build = [plan.sam, "build", *_common(plan)]
    return [Command(tuple(build)), Command((plan.sam, *deploy))]


def outputs_command(plan: Plan) -> Command:
    """The shell equivalent of reading the stack's outputs (done with boto3)."""
    region = ["--region", plan.region] if plan.region else []
    return Command(
        ("aws", "cloudformation", "describe-stacks", "--stack-name", plan.stack, *region)
    )


def uploads(outputs: dict[str, str]) -> list[tuple[Path, str, str]]:
    """(file, bucket, key) of each configuration file to upload."""
    bucket = outputs["BucketName"]
    return [(REPO / "infra" / name, bucket, f"config/{name}") for name in CONFIG_FILES]


def key_command(plan: Plan, outputs: dict[str, str]) -> Command:
    """``edgeroute keys create --admin`` against the stack's tables."""
    tables = {
        TableNames.env_var(role): outputs[f"{TableNames.logical_id(role)}Name"]
        for role in TableNames.roles()
    }
    env = {"EDGEROUTE_STORE": "dynamodb", **tables}
    if plan.region:
        env["AWS_REGION"] = plan.region
    argv = ("edgeroute", "keys", "create", "--name", plan.admin_name, "--admin")
    return Command(argv, tuple(env.items()))


def placeholder_outputs() -> dict[str, str]:
    """The outputs a dry run shows: each as ``<OutputKey>``."""
    names = ["ApiUrl", "BucketName"]
    names += [f"{TableNames.logical_id(role)}Name" for role in TableNames.roles()]
    return {name: f"<{name}>" for name in names}


def dry_run(plan: Plan) -> str:
    """Every step of a deploy as shell, one per line, in order."""
    outputs = placeholder_outputs()
    lines = [c.shell() for c in [*sam_commands(plan), outputs_command(plan)]]
    lines += [f"aws s3 cp {shlex.quote(str(f))} s3://{b}/{k}" for f, b, k in uploads(outputs)]
    lines.append(key_command(plan, outputs).shell())
    lines.append(f"# base URL: {outputs['ApiUrl']}v1")
    return "\n".join(lines)


def _run(command: Command) -> None:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", **dict(command.env)}
    if command.argv[0] == "edgeroute":  # this interpreter's CLI, wherever it is installed
        argv = [sys.executable, "-m", "edgeroute.tools.cli", *command.argv[1:]]
    else:
        argv = list(command.argv)
    print(f"+ {command.shell()}", file=sys.stderr)
    try:
        done = subprocess.run(argv, cwd=REPO, env=env, check=False)
    except FileNotFoundError as exc:
        raise DeployError(f"{argv[0]} not found: install it (make sam-cli) or pass --sam") from exc
    if done.returncode != 0:
        raise DeployError(f"{command.argv[0]} {command.argv[1]} failed (exit {done.returncode})")


def _stack_outputs(plan: Plan) -> dict[str, str]:
    import boto3

    client: Any = boto3.client("cloudformation", region_name=plan.region)
    stack = client.describe_stacks(StackName=plan.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [k for k in placeholder_outputs() if k not in outputs]
    if missing:
        raise DeployError(f"stack {plan.stack} has no output {', '.join(missing)}: redeploy it")
    return outputs


def deploy(plan: Plan) -> int:
    """Run every step; the first that fails ends the deploy with exit status 1."""
    try:
        for command in sam_commands(plan):
            _run(command)
        outputs = _stack_outputs(plan)
        import boto3

        s3: Any = boto3.client("s3", region_name=plan.region)
        for path, bucket, key in uploads(outputs):
            print(f"+ upload {path.name} to s3://{bucket}/{key}", file=sys.stderr)
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        _run(key_command(plan, outputs))
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"base URL (buffered and streamed calls): {outputs['ApiUrl']}v1")
    return 0


def _default_sam() -> str:
    local = REPO / ".venv-sam" / "bin" / "sam"  # make sam-cli puts it here
    return str(local) if local.exists() else "sam"


def add_deploy_parser(sub: Any) -> None:
    """``edgeroute deploy``: its arguments."""
    parser = sub.add_parser(
        "deploy", help="sam build and deploy a stack, upload its configuration, mint a key"
    )
    # Its own destination: the top-level --stack names an existing stack to operate.
    parser.add_argument(
        "--stack",
        dest="deploy_stack",
        metavar="NAME",
        required=True,
        help="CloudFormation stack to create or update",
    )
    parser.add_argument(
        "--config-env", default="default", help=f"environment in {SAMCONFIG} (default, prod)"
    )
    parser.add_argument("--region", help="AWS region (default: samconfig's)")
    parser.add_argument(
        "--parameter-overrides",
        help="template parameters, 'Stage=qa MemorySize=2048' (replaces samconfig's list)",
    )
    parser.add_argument("--admin-name", default="admin", help="name of the first admin key")
    parser.add_argument("--sam", default=_default_sam(), help="the sam executable")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    parser.set_defaults(func=_deploy_command)


def _deploy_command(args: argparse.Namespace, settings: object) -> int:
    plan = Plan(
        stack=args.deploy_stack,
        config_env=args.config_env,
        region=args.region,
        parameter_overrides=args.parameter_overrides,
        admin_name=args.admin_name,
        sam=args.sam,
    )
    if args.dry_run:
        print(dry_run(plan))
        return 0
    return deploy(plan)
