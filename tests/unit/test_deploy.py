"""``edgeroute deploy --dry-run`` (make deploy DRY_RUN=1): the steps of a first deploy,
printed as the shell commands a real run performs, with nothing run."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

import pytest

from edgeroute.tools import deploy
from edgeroute.tools.cli import build_parser, main


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a dry run ran {args}")

    monkeypatch.setattr(subprocess, "run", refuse)


def _dry_run(capsys: pytest.CaptureFixture[str], *flags: str) -> list[list[str]]:
    assert main(["deploy", "--stack", "edgeroute-qa", "--sam", "sam", "--dry-run", *flags]) == 0
    out = capsys.readouterr().out
    return [shlex.split(line) for line in out.splitlines() if not line.startswith("#")]


def test_the_dry_run_prints_build_deploy_upload_and_key_in_order(
    capsys: pytest.CaptureFixture[str], nothing_runs: None
) -> None:
    build, sam_deploy, outputs, models, routing, key = _dry_run(
        capsys, "--parameter-overrides", "Stage=qa MemorySize=2048", "--region", "eu-west-1"
    )
    config = ["--config-file", "infra/samconfig.toml", "--config-env", "default"]
    assert build == ["sam", "build", *config, "--region", "eu-west-1"]
    assert sam_deploy[:2] == ["sam", "deploy"]
    assert sam_deploy[sam_deploy.index("--stack-name") + 1] == "edgeroute-qa"
    assert sam_deploy[-2:] == ["--parameter-overrides", "Stage=qa MemorySize=2048"]
    assert outputs[:4] == ["aws", "cloudformation", "describe-stacks", "--stack-name"]
    assert models[-1] == "s3://<BucketName>/config/models.yaml"
    assert models[-2].endswith("infra/models.yaml")
    assert routing[-1] == "s3://<BucketName>/config/routing.yaml"
    assert key[-5:] == ["keys", "create", "--name", "admin", "--admin"]
    assert "EDGEROUTE_STORE=dynamodb" in key
    assert "EDGEROUTE_TABLE_KEYS=<KeysTableName>" in key
    assert "EDGEROUTE_TABLE_JOBS=<JobsTableName>" in key


def test_the_dry_run_prints_the_base_url_it_would_print(
    capsys: pytest.CaptureFixture[str], nothing_runs: None
) -> None:
    assert main(["deploy", "--stack", "s", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "# base URL: <ApiUrl>v1"


def test_without_overrides_samconfig_keeps_its_parameters(
    capsys: pytest.CaptureFixture[str], nothing_runs: None
) -> None:
    _, sam_deploy, *_ = _dry_run(capsys, "--config-env", "prod")
    assert "--parameter-overrides" not in sam_deploy
    assert sam_deploy[sam_deploy.index("--config-env") + 1] == "prod"


def test_deploys_stack_is_its_own_argument_not_the_stack_other_commands_read() -> None:
    parsed = build_parser().parse_args(["deploy", "--stack", "edgeroute-qa"])
    assert parsed.deploy_stack == "edgeroute-qa" and parsed.stack is None
    parsed = build_parser().parse_args(["--stack", "edgeroute-prod", "keys", "list"])
    assert parsed.stack == "edgeroute-prod"


def test_a_missing_stack_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["deploy", "--dry-run"])
    assert exit_.value.code == 2
    assert "--stack" in capsys.readouterr().err


def test_a_missing_sam_ends_the_deploy_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = deploy.Plan(stack="s", sam="/nonexistent/sam")
    assert deploy.deploy(plan) == 1
    assert "error: /nonexistent/sam not found: install it (make sam-cli)" in capsys.readouterr().err


def test_a_deploy_prints_the_one_base_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's ApiUrl serves buffered and streamed calls: one base URL, no second
    (streaming) output to wait for."""
    outputs = {name: f"value-of-{name}" for name in deploy.placeholder_outputs()}
    outputs["ApiUrl"] = "https://abc.execute-api.us-east-1.amazonaws.com/dev/"
    assert "StreamUrl" not in outputs
    monkeypatch.setattr(deploy, "_run", lambda command: None)
    monkeypatch.setattr(deploy, "_stack_outputs", lambda plan: outputs)

    class NoS3:
        def put_object(self, **kwargs: Any) -> None:
            pass

    monkeypatch.setattr("boto3.client", lambda *args, **kwargs: NoS3())
    assert deploy.deploy(deploy.Plan(stack="s", sam="sam")) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "base URL (buffered and streamed calls): https://abc.execute-api.us-east-1.amazonaws.com/dev/v1"
    ]
