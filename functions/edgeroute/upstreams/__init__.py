"""Upstream adapters, one module per protocol, chosen by the registry's ``protocol``."""

from __future__ import annotations

from edgeroute.config.registry import ModelSpec, Protocol
from edgeroute.upstreams.anthropic import AnthropicMessages
from edgeroute.upstreams.base import Upstream
from edgeroute.upstreams.bedrock import BedrockConverse
from edgeroute.upstreams.edge import EdgeModels
from edgeroute.upstreams.openai_compat import OpenAICompatible
from edgeroute.upstreams.sagemaker import SageMakerEndpoint
from edgeroute.upstreams.tgi import TGINative

__all__ = ["Upstream", "adapter_for"]

_ADAPTERS: dict[Protocol, Upstream] = {
    Protocol.OPENAI: OpenAICompatible(),
    Protocol.TGI: TGINative(),
    Protocol.EDGE: EdgeModels(),
    Protocol.SAGEMAKER: SageMakerEndpoint(),
    Protocol.BEDROCK: BedrockConverse(),
    Protocol.ANTHROPIC: AnthropicMessages(),
}


def adapter_for(model: ModelSpec) -> Upstream:
    try:
        return _ADAPTERS[model.protocol]
    except KeyError:
        raise NotImplementedError(f"no upstream adapter for protocol {model.protocol}") from None
