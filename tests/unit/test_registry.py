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
    endpoint: ${TEST_A_URL:-http://127.0.0.1:1/v1}
    tier: small
    capabilities: [chat, tools]
    fallbacks: [b]
  - name: b
    protocol: tgi
    endpoint: http://127.0.0.1:2
    tier: large
    credential: {env: B_TOKEN}
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
    monkeypatch.setenv("TEST_A_URL", "http://10.0.0.5:8000/v1/")
    model = parse_registry(GOOD, "models.yaml").get("a")
    assert model is not None and model.endpoint == "http://10.0.0.5:8000/v1"


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
