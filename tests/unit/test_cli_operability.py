"""Operating edgeroute from the command line: `--version`, key names unique per tenant,
`--models` checked against the registry, and every configuration or usage mistake ending
in one `error: ...` line and exit status 2, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from edgeroute.settings import TableNames
from edgeroute.tools.cli import main

Cli = Callable[..., tuple[int, str, str]]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))
    monkeypatch.setenv("EDGEROUTE_REGISTRY", str(REPO / "infra" / "models.yaml"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_version_is_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"edgeroute {metadata.version('edgeroute')}"


def test_a_name_the_tenant_has_is_refused_and_revoke_by_name_works(cli: Cli) -> None:
    code, out, _ = cli("keys", "create", "--name", "ci", "--tenant", "acme", "--json")
    assert code == 0
    first = json.loads(out)
    err = _one_line_error(*cli("keys", "create", "--name", "ci", "--tenant", "acme")[::2])
    assert "tenant 'acme' already has a key named 'ci'" in err
    assert first["key_id"] in err and "keys rotate ci" in err and "keys revoke ci" in err
    # Another tenant may use the name; then the bare name is ambiguous.
    code, out, _ = cli("keys", "create", "--name", "ci", "--tenant", "other", "--json")
    assert code == 0
    other = json.loads(out)
    err = _one_line_error(*cli("keys", "revoke", "ci")[::2])
    assert "acme, other" in err and "key id" in err

    assert cli("keys", "revoke", other["key_id"])[0] == 0
    code, out, _ = cli("keys", "revoke", "ci")  # now one tenant's: the name finds it
    assert code == 0 and first["key_id"] in out
    # Revoked, the name is free again.
    code, out, _ = cli("keys", "create", "--name", "ci", "--tenant", "acme", "--json")
    assert code == 0 and json.loads(out)["key_id"] != first["key_id"]


def test_revoke_by_name_takes_a_rotated_key_and_its_replacement(cli: Cli) -> None:
    code, out, _ = cli("keys", "create", "--name", "team", "--json")
    old = json.loads(out)["key_id"]
    code, out, _ = cli("keys", "rotate", "team", "--json")
    assert code == 0
    new = json.loads(out)["key_id"]
    code, out, _ = cli("keys", "revoke", "team")
    assert code == 0 and old in out and new in out
    code, out, _ = cli("keys", "list")
    assert all(json.loads(line)["revoked"] for line in out.splitlines())


def test_models_are_checked_against_the_registry(cli: Cli) -> None:
    err = _one_line_error(*cli("keys", "create", "--name", "x", "--models", "no-such-model")[::2])
    assert "no-such-model" in err and "known models:" in err and "smollm2-135m" in err
    code, out, _ = cli("keys", "create", "--name", "x", "--models", "smollm2,qwen3-32b", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["models"] == ["smollm2-135m", "qwen3-32b"]  # an alias names its model
    err = _one_line_error(*cli("keys", "update", "x", "--models", "gpt-9")[::2])
    assert "gpt-9" in err and "known models:" in err
    code, out, _ = cli("keys", "list")
    assert json.loads(out)["models"] == ["smollm2-135m", "qwen3-32b"]


def test_a_registry_that_does_not_load_is_named(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGEROUTE_REGISTRY", str(tmp_path / "missing.yaml"))
    err = _one_line_error(*cli("keys", "create", "--name", "x", "--models", "qwen3")[::2])
    assert "--models cannot be checked" in err and "missing.yaml" in err


def test_dynamodb_without_table_names(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_STORE", "dynamodb")
    for role in TableNames.roles():
        monkeypatch.delenv(TableNames.env_var(role), raising=False)
    err = _one_line_error(*cli("keys", "list")[::2])
    assert "EDGEROUTE_TABLE_KEYS" in err
    monkeypatch.setenv("EDGEROUTE_TABLE_KEYS", "k")
    err = _one_line_error(*cli("keys", "list")[::2])
    assert "EDGEROUTE_TABLE_JOBS" in err


def test_an_unreachable_dynamodb_store(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_STORE", "dynamodb")
    for var, name in TableNames.with_prefix("nowhere").as_env().items():
        monkeypatch.setenv(var, name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    err = _one_line_error(*cli("keys", "list")[::2])
    assert "AWS:" in err and "127.0.0.1:9" in err


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        ({}, ("--stack", "x", "keys", "list")),  # CloudFormation
        ({"EDGEROUTE_STORE": "dynamodb", **TableNames.with_prefix("t").as_env()}, ("keys", "list")),
        ({"EDGEROUTE_REGISTRY": "s3://bucket/config/models.yaml"}, ("probe",)),  # S3
    ],
)
def test_an_empty_aws_default_region_is_named(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: tuple[str, ...]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "")
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    err = _one_line_error(*cli(*argv)[::2])
    assert "AWS_DEFAULT_REGION is set but empty" in err and "unset it" in err


@pytest.mark.parametrize("command", ["revoke", "rotate", "update"])
def test_a_key_command_on_an_unknown_key_is_a_usage_error(cli: Cli, command: str) -> None:
    err = _one_line_error(*cli("keys", command, "no-such-key")[::2])
    assert "no key with id or name 'no-such-key'" in err and "edgeroute keys list" in err


def test_an_unwritable_sqlite_store(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "file" / "edgeroute.db"))
    err = _one_line_error(*cli("keys", "list")[::2])
    assert "file" in err


def test_a_bad_registry_path_for_probe(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_REGISTRY", "/nowhere/models.yaml")
    err = _one_line_error(*cli("probe")[::2])
    assert "/nowhere/models.yaml" in err and "EDGEROUTE_REGISTRY" in err


def test_license_matches_pyproject() -> None:
    text = (REPO / "LICENSE").read_text()
    assert 'license = { text = "Apache-2.0" }' in (REPO / "pyproject.toml").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_usage_totals_per_model(cli: Cli, tmp_path: Path) -> None:
    import asyncio
    import time

    from edgeroute.store.base import UsageRecord
    from edgeroute.store.sqlite import SQLiteStore

    async def record() -> None:
        store = SQLiteStore(tmp_path / "edgeroute.db")
        now = time.time()
        for i, (model, status) in enumerate([("qwen3-32b", 200), ("qwen3-32b", 500), ("s", 200)]):
            await store.record_usage(
                UsageRecord(
                    f"r{i}",
                    "k",
                    "acme",
                    "chat",
                    model,
                    "large",
                    10,
                    5,
                    7,
                    20.0 * (i + 1),
                    status,
                    now - 60,
                )
            )
        old = UsageRecord("old", "k", "acme", "chat", "s", "small", 1, 1, 1, 1.0, 200, now - 7200)
        await store.record_usage(old)
        await store.close()

    asyncio.run(record())
    code, out, _ = cli("usage", "--since", "1h", "--json")
    assert code == 0
    rows = {row["model"]: row for row in json.loads(out)["data"]}
    assert rows["qwen3-32b"]["requests"] == 2 and rows["qwen3-32b"]["errors"] == 1
    assert rows["qwen3-32b"]["total_tokens"] == 30 and rows["s"]["requests"] == 1
    code, out, _ = cli("usage", "--since", "1h")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["model", "requests", "errors"]
    assert lines[1].split()[:3] == ["qwen3-32b", "2", "1"] and lines[2].split()[:2] == ["s", "1"]
    code, out, _ = cli("usage", "--tenant", "nobody")
    assert code == 0 and "no usage" in out
