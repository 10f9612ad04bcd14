from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.config.registry import load_registry, parse_registry
from edgeroute.errors import ConfigError
from edgeroute.settings import Settings
from edgeroute.types import Capability

GOOD = """
models:
  - name: a
    aliases: [alpha]
    endpoint: ${EDGEROUTE_TEST_A_URL:-http://127.0.0.1:1/v1}
    tier: small
    capabilities: [chat, tools]
    fallbacks: [b]
  - name: b
    protocol: tgi
    endpoint: http://127.0.0.1:2
    tier: large
    credential: {env: EDGEROUTE_B_TOKEN}
"""


def test_parses_models_aliases_and_defaults() -> None:
    registry = parse_registry(GOOD, "models.yaml")
    a = registry.get("alpha")
    assert a is not None and a.name == "a"
    assert a.supports(Capability.TOOLS) and not a.supports(Capability.VISION)
    assert a.endpoint == "http://127.0.0.1:1/v1"
    assert a.timeouts.connect == 3.0
    assert registry.get("b") is not None and len(registry) == 2


def test_environment_variables_expand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_TEST_A_URL", "http://10.0.0.5:8000/v1/")
    model = parse_registry(GOOD, "models.yaml").get("a")
    assert model is not None and model.endpoint == "http://10.0.0.5:8000/v1"


# A registry that could read any variable could send the function's AWS keys to an
# endpoint of its choosing, as a URL or as a credential header.
READS_AWS_KEY = [
    ("endpoint: http://h/${AWS_SECRET_ACCESS_KEY}", "models.x.endpoint", "AWS_SECRET_ACCESS_KEY"),
    ("endpoint: ${UPSTREAM_URL:-http://h}", "models.x.endpoint", "UPSTREAM_URL"),
    (
        "endpoint: http://h\n    description: ${AWS_SESSION_TOKEN}",
        "models.x.description",
        "AWS_SESSION_TOKEN",
    ),
    (
        "endpoint: http://h\n    credential: {env: AWS_SECRET_ACCESS_KEY}",
        "models.x.credential.env",
        "AWS_SECRET_ACCESS_KEY",
    ),
]


def _one_model(line: str) -> str:
    return f"models:\n  - name: x\n    tier: small\n    {line}\n"


@pytest.mark.parametrize(("line", "field", "name"), READS_AWS_KEY)
def test_a_variable_outside_the_allowance_is_refused_at_load(
    monkeypatch: pytest.MonkeyPatch, line: str, field: str, name: str
) -> None:
    monkeypatch.setenv(name, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    with pytest.raises(ConfigError) as caught:
        parse_registry(_one_model(line), "conf/models.yaml")
    message = str(caught.value)
    assert message.startswith(f"conf/models.yaml: {field}: ")
    assert f"may not read the environment variable {name}" in message
    assert f"add {name} to EDGEROUTE_REGISTRY_ENV_ALLOW" in message
    assert "wJalrXUtnFEMI" not in message


@pytest.mark.parametrize(("line", "field", "name"), READS_AWS_KEY)
def test_a_variable_the_operator_lists_is_read(
    monkeypatch: pytest.MonkeyPatch, line: str, field: str, name: str
) -> None:
    monkeypatch.setenv(name, "http://listed")
    model = parse_registry(_one_model(line), "conf/models.yaml", env_allow=(name, "OTHER")).get("x")
    assert model is not None


def test_load_registry_passes_the_allowance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLLM_URL", "http://10.0.0.9:8000/v1")
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: x, tier: small, endpoint: '${VLLM_URL}'}\n")
    with pytest.raises(ConfigError, match="variable VLLM_URL"):
        load_registry(path)
    monkeypatch.setenv("EDGEROUTE_REGISTRY_ENV_ALLOW", "OTHER, VLLM_URL")
    model = load_registry(path, Settings.from_env().registry_env_allow)
    assert model.get("x") is not None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("models:\n  - name: x\n    tier: huge\n    endpoint: http://h", "models.x.tier"),
        ("models:\n  - name: x\n    tier: small\n    endpoint: ftp://h", "models.x.endpoint"),
        ("models:\n  - name: x\n    tier: small", "needs an 'endpoint'"),
        (
            "models:\n  - name: x\n    tier: small\n    endpoint: http://h\n    colour: red",
            "models.x.colour",
        ),
        (
            "models:\n  - name: x\n    tier: small\n    endpoint: http://h\n"
            "    parameters: {temperature: {min: 2, max: 1}}",
            "min 2.0 is greater than max 1.0",
        ),
        (
            "models:\n  - name: x\n    tier: small\n    endpoint: http://h\n    fallbacks: [y]",
            "fallbacks names 'y'",
        ),
        (
            "models:\n  - {name: x, tier: small, endpoint: 'http://h'}\n"
            "  - {name: y, aliases: [x], tier: small, endpoint: 'http://h'}",
            "'x' is used twice",
        ),
        ("models: [", "not valid YAML"),
        (
            "models:\n  - name: x\n    tier: small\n    endpoint: http://h\n"
            "    inference_component: ic-1",
            "inference_component: only a SageMaker endpoint",
        ),
        (
            "models:\n  - name: x\n    tier: small\n    protocol: sagemaker\n"
            "    inference_component: ic-1\n    replicas:\n      - {region: eu-west-1}\n"
            "      - {endpoint: 'http://h', protocol: openai}",
            "set 'protocol: sagemaker' (on the model and every replica)",
        ),
        (
            "models:\n  - name: x\n    tier: small\n    protocol: sagemaker\n"
            "    inference_component: ''",
            "models.x.inference_component",
        ),
    ],
)
def test_errors_name_file_and_field(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_registry(text, "conf/models.yaml")
    assert "conf/models.yaml" in str(caught.value)
    assert words in str(caught.value)


def test_missing_file_says_which_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="EDGEROUTE_REGISTRY"):
        load_registry(tmp_path / "nope.yaml")


def test_example_registry_in_infra_is_valid() -> None:
    registry = load_registry(Settings().registry)
    assert {m.tier for m in registry.models()} >= {"small", "medium", "large"}


def test_routing_names_are_reserved() -> None:
    with pytest.raises(ConfigError, match="'auto' is reserved"):
        parse_registry(
            "models:\n  - {name: x, aliases: [auto], tier: small, endpoint: 'http://h'}", "m.yaml"
        )
