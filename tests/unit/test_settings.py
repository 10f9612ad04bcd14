"""Settings: every EDGEROUTE_* variable is one field of one model, documented in the
README; malformed values stop the process with a message naming the variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from httpx_aiohttp import AiohttpTransport

from edgeroute.edge import models
from edgeroute.errors import ConfigError
from edgeroute.health import probe
from edgeroute.pipeline import gateway as gateway_module
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import BatchConfig, Settings, TableNames, variables
from edgeroute.upstreams import http
from tests.support.gateway import GatewayProcess

REPO = Path(__file__).resolve().parents[2]
NAME = re.compile(r"EDGEROUTE_[A-Z0-9_]+")
# Named in the source but not settings of the gateway, so not in the README's table.
NOT_SETTINGS = {
    # The layers' make variable: which CPU the dependencies layer is built for.
    "EDGEROUTE_ARCH",
    # Set by `edgeroute serve --local-upstream` for infra/models.yaml's ${...} reference.
    "EDGEROUTE_LOCAL_LLM_URL",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("EDGEROUTE_"):
            monkeypatch.delenv(name)


def _source_names() -> dict[str, set[Path]]:
    files = [p for p in (REPO / "functions").rglob("*") if p.is_file()]
    files += [p for p in (REPO / "layers").rglob("*") if p.is_file()]
    files.append(REPO / "template.yaml")
    found: dict[str, set[Path]] = {}
    for path in files:
        if "__pycache__" in path.parts or any(p.endswith(".egg-info") for p in path.parts):
            continue  # generated: bytecode, and the README copied into package metadata
        for name in NAME.findall(path.read_text(errors="replace")):
            found.setdefault(name, set()).add(path.relative_to(REPO))
    return found


def _readme_table() -> dict[str, str]:
    """Variable -> default cell of the README's settings table."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(EDGEROUTE_[A-Z0-9_]+)` \| ([^|]+) \|", section, re.MULTILINE)
    return {name: default.strip().strip("`") for name, default in rows}


def test_every_variable_in_the_source_is_a_setting() -> None:
    settings = {name for name, _ in variables()}
    unknown = {}
    for name, paths in _source_names().items():
        # "EDGEROUTE_TABLE_*" in prose, f"EDGEROUTE_TABLE_{role}" in code: a family.
        known = (
            any(s.startswith(name) for s in settings)
            if name.endswith("_")
            else name in settings or name in NOT_SETTINGS
        )
        if not known:
            unknown[name] = sorted(map(str, paths))
    assert not unknown, f"not fields of edgeroute.settings.Settings: {unknown}"


def test_the_readme_table_lists_exactly_the_settings() -> None:
    settings = [name for name, _ in variables()]
    documented = _readme_table()
    assert sorted(set(settings) - set(documented)) == [], "settings missing from README"
    assert sorted(set(documented) - set(settings)) == [], "README rows that are not settings"
    assert len(settings) == len(set(settings))


def test_readme_defaults_are_the_models() -> None:
    documented = _readme_table()
    for name, info in variables():
        if isinstance(info.default, (int, float)) and not isinstance(info.default, bool):
            shown = str(int(info.default)) if float(info.default).is_integer() else info.default
            assert documented[name] == shown, name
        elif isinstance(info.default, str) and info.default and name != "EDGEROUTE_REGISTRY":
            assert documented[name] == info.default, name


def test_defaults() -> None:
    settings = Settings.from_env()
    assert Path(settings.registry) == REPO / "infra" / "models.yaml"
    assert settings.registry_env_allow == ()
    assert settings.policy == ""
    assert settings.store == "sqlite"
    assert settings.sqlite_path == ".edgeroute/edgeroute.db"
    assert settings.table is None
    assert settings.key_cache_ttl_s == 5.0
    assert settings.max_body_bytes == 6 * 1024 * 1024
    assert settings.max_connections == 512
    assert settings.classify == "background"
    assert settings.cache_ttl_s == 3600.0
    assert settings.cache_max_bytes == 64 * 1024 * 1024
    assert settings.edge_models is None
    assert settings.edge_threads == 1
    assert settings.embed_batching == "per-input"
    assert settings.health_ttl_s == 180.0
    assert settings.batch == BatchConfig(concurrency=8, max_bytes=100 * 1024 * 1024, lease_s=900)


def test_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    names = TableNames.with_prefix("t")
    env = {
        "EDGEROUTE_REGISTRY": "s3://bucket/config/models.yaml",
        "EDGEROUTE_REGISTRY_ENV_ALLOW": "VLLM_API_KEY, TGI_URL,",
        "EDGEROUTE_POLICY": str(tmp_path / "routing.yaml"),
        "EDGEROUTE_STORE": "dynamodb",
        **names.as_env(),
        "EDGEROUTE_KEY_CACHE_TTL": "0",
        "EDGEROUTE_MAX_BODY_BYTES": "1024",
        "EDGEROUTE_MAX_CONNECTIONS": "16",
        "EDGEROUTE_CLASSIFY": "auto",
        "EDGEROUTE_CACHE_TTL": "1.5",
        "EDGEROUTE_CACHE_MAX_BYTES": "0",
        "EDGEROUTE_EDGE_MODELS": str(tmp_path),
        "EDGEROUTE_EDGE_THREADS": "2",
        "EDGEROUTE_EMBED_BATCHING": "batched",
        "EDGEROUTE_HEALTH_TTL": "60",
        "EDGEROUTE_BATCH_CONCURRENCY": "3",
        "EDGEROUTE_BATCH_MAX_BYTES": "2048",
        "EDGEROUTE_BATCH_LEASE_S": "30",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.registry == "s3://bucket/config/models.yaml"
    assert settings.registry_env_allow == ("VLLM_API_KEY", "TGI_URL")
    assert settings.policy == str(tmp_path / "routing.yaml")
    assert settings.store == "dynamodb"
    assert settings.tables() == names
    assert settings.key_cache_ttl_s == 0
    assert settings.max_body_bytes == 1024
    assert settings.max_connections == 16
    assert settings.classify == "auto"
    assert settings.cache_ttl_s == 1.5
    assert settings.cache_max_bytes == 0
    assert settings.edge_models == tmp_path
    assert settings.edge_threads == 2
    assert settings.embed_batching == "batched"
    assert settings.health_ttl_s == 60
    assert settings.batch == BatchConfig(concurrency=3, max_bytes=2048, lease_s=30)


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_MAX_BODY_BYTES", "")
    monkeypatch.setenv("EDGEROUTE_BATCH_LEASE_S", "")
    settings = Settings.from_env()
    assert settings.max_body_bytes == 6 * 1024 * 1024
    assert settings.batch.lease_s == 900


def test_settings_are_frozen_and_copied_with_changes() -> None:
    settings = Settings.from_env()
    changed = settings.model_copy(update={"classify": "auto"})
    assert (settings.classify, changed.classify) == ("background", "auto")
    with pytest.raises(ValueError, match="frozen"):
        settings.classify = "auto"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("EDGEROUTE_KEY_CACHE_TTL", "5s", "expected a number of seconds, 0 or more, e.g. 5."),
        ("EDGEROUTE_KEY_CACHE_TTL", "-1", "expected a number of seconds, 0 or more, e.g. 5."),
        ("EDGEROUTE_STORE", "mysql", "expected 'sqlite' or 'dynamodb'."),
        (
            "EDGEROUTE_REGISTRY_ENV_ALLOW",
            "VLLM_API_KEY,${AWS}",
            "expected variable names separated by commas",
        ),
        ("EDGEROUTE_MAX_BODY_BYTES", "-1", "expected a whole number of bytes above 0"),
        ("EDGEROUTE_MAX_CONNECTIONS", "many", "expected a whole number, 1 or more"),
        ("EDGEROUTE_CLASSIFY", "sometimes", "expected 'background', 'always' or 'auto'."),
        ("EDGEROUTE_EMBED_BATCHING", "yes", "expected 'per-input' or 'batched'."),
        ("EDGEROUTE_PII_DEFAULT", "redact", "expected 'allow', 'mask' or 'block'."),
        ("EDGEROUTE_PII_PHONE_REGION", "usa", "expected two capital letters, e.g. US"),
        ("EDGEROUTE_EDGE_THREADS", "0", "expected a whole number, 1 or more"),
        ("EDGEROUTE_HEALTH_TTL", "0", "expected a number of seconds above 0"),
        ("EDGEROUTE_BATCH_CONCURRENCY", "1.5", "expected a whole number, 1 or more"),
        ("EDGEROUTE_BATCH_LEASE_S", "15m", "expected a number of seconds above 0"),
    ],
)
def test_a_malformed_value_names_the_variable_and_its_form(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    assert str(caught.value).startswith(f"{name}={value!r} is not valid: {expected}")


def test_every_malformed_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_KEY_CACHE_TTL", "5s")
    monkeypatch.setenv("EDGEROUTE_STORE", "mysql")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    lines = str(caught.value).splitlines()
    assert [line.split("=")[0] for line in lines] == ["EDGEROUTE_STORE", "EDGEROUTE_KEY_CACHE_TTL"]


def test_dynamodb_needs_every_table_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_STORE", "dynamodb")
    with pytest.raises(ConfigError, match="EDGEROUTE_STORE=dynamodb needs the table names"):
        Settings.from_env()
    monkeypatch.setenv("EDGEROUTE_TABLE_KEYS", "keys")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    missing = ", ".join(TableNames.env_var(r) for r in TableNames.roles() if r != "keys")
    assert str(caught.value) == (
        f"{missing} are not set: expected a DynamoDB table name each "
        "(set all six EDGEROUTE_TABLE_* or none)."
    )


def test_a_misspelt_group_member_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_BATCH_CONCURENCY", "4")
    with pytest.raises(ConfigError, match="EDGEROUTE_BATCH_CONCURENCY is not a setting"):
        Settings.from_env()


def test_unconfigured_modules_start_from_the_settings_defaults() -> None:
    """The modules with process-wide state hold the defaults until configured, so code
    run without a gateway (benchmarks, tools) behaves as the default settings do."""
    defaults = Settings.from_env()
    assert http.max_connections() == defaults.max_connections
    assert models.intra_op_threads() == defaults.edge_threads
    assert models.embed_batched() is (defaults.embed_batching == "batched")
    assert defaults.health_ttl_s == probe.DEFAULT_TTL_S


async def test_the_gateway_hands_process_settings_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Restored after the test: the modules' state is process-wide.
    for module, name in [
        (http, "_max_connections"),
        (http, "_clients"),
        (models, "_configured_dir"),
        (models, "_threads"),
        (models, "_batching"),
    ]:
        monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(http, "_clients", {})
    monkeypatch.setattr(gateway_module, "_warm_edge", lambda registry: None)
    registry = tmp_path / "models.yaml"
    registry.write_text("models: []\n")
    settings = Settings(
        registry=str(registry),
        sqlite_path=str(tmp_path / "s.db"),
        max_connections=7,
        edge_models=tmp_path,
        edge_threads=3,
        embed_batching="batched",
    )
    gw = Gateway.from_settings(settings)
    try:
        client = http.shared_client()
        transport = client._transport
        assert isinstance(transport, AiohttpTransport)
        assert transport.limits.max_connections == 7
        assert models.models_dir() == tmp_path and models.intra_op_threads() == 3
        assert models.embed_batched()
    finally:
        await http.close_shared_client()
        await gw.store.close()


def test_cli_reports_a_malformed_variable_without_a_traceback(tmp_path: Path) -> None:
    # `edgeroute serve` as the suite starts it; the autouse fixture cleared EDGEROUTE_*.
    env = {"PYTHONPATH": str(REPO / "functions"), "EDGEROUTE_KEY_CACHE_TTL": "5s"}
    done = GatewayProcess(env, tmp_path).cli("serve", "--port", "0")
    assert done.returncode != 0
    assert "EDGEROUTE_KEY_CACHE_TTL='5s' is not valid: expected a number of seconds" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
