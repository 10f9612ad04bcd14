"""The registry examples in docs/deploy.md load as written: every ```yaml block there is
a complete models.yaml, parsed by the registry loader with no environment set, so the
documentation cannot drift from the code; together they show each GPU backend."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeroute.config.registry import ModelSpec, Protocol, parse_registry
from edgeroute.errors import ConfigError

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.M | re.S)


def yaml_blocks(markdown: str) -> list[str]:
    return _YAML_BLOCK.findall(markdown)


def _examples() -> list[str]:
    return yaml_blocks(DEPLOY_DOC.read_text(encoding="utf-8"))


def _example_models() -> list[ModelSpec]:
    return [
        model
        for index, block in enumerate(_examples())
        for model in parse_registry(block, f"docs/deploy.md yaml block {index + 1}").models()
    ]


def test_blocks_are_found_whole() -> None:
    text = "a\n```yaml\nmodels: []\n```\n```sh\nls\n```\n```yaml\nb: 1\n```\n"
    assert yaml_blocks(text) == ["models: []\n", "b: 1\n"]


@pytest.mark.parametrize("index", range(len(_examples())))
def test_every_yaml_block_is_a_registry_that_loads(
    index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = _examples()[index]
    for name in re.findall(r"\$\{(\w+)", block):  # the defaults written in the doc apply
        monkeypatch.delenv(name, raising=False)
    registry = parse_registry(block, f"docs/deploy.md yaml block {index + 1}")
    assert len(registry) > 0


def test_the_examples_cover_every_gpu_backend() -> None:
    models = _example_models()
    protocols = {model.protocol for model in models}
    assert {Protocol.OPENAI, Protocol.TGI, Protocol.SAGEMAKER, Protocol.BEDROCK} <= protocols
    sagemaker = [m for m in models if m.protocol is Protocol.SAGEMAKER]
    assert any(m.inference_component for m in sagemaker)
    assert any(not m.inference_component for m in sagemaker)
    bedrock = [m.wire_name for m in models if m.protocol is Protocol.BEDROCK]
    assert any(
        name.startswith("arn:aws:bedrock:") and ":inference-profile/" in name for name in bedrock
    )
    assert any(not name.startswith("arn:") for name in bedrock)  # a model ID


def test_a_broken_example_would_fail() -> None:
    """The check has teeth: the old vLLM example (alias 'large', a routing name) is refused."""
    broken = "models:\n  - {name: x, aliases: [large], endpoint: 'http://h/v1', tier: large}\n"
    with pytest.raises(ConfigError, match="reserved for routing"):
        parse_registry(broken, "docs/deploy.md")
