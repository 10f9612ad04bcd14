"""What a request needs of a model, read once from the body for named models and the router."""

from __future__ import annotations

from typing import Any

import pytest

from edgeroute.config.registry import parse_registry
from edgeroute.errors import InvalidRequest
from edgeroute.pipeline.resolve import plan
from edgeroute.store.keys import mint_key
from edgeroute.types import Capability, Kind
from edgeroute.wire.capabilities import required_capabilities
from tests.support.routing import decide_auto

C = Capability


def _chat(*parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    content: Any = list(parts) if parts else "hello"
    return {"messages": [{"role": "user", "content": content}], **extra}


TEXT = {"type": "text", "text": "what is this?"}
IMAGE_URL = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
INPUT_IMAGE = {"type": "input_image", "image_url": "https://example.com/a.png"}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {}}}]


@pytest.mark.parametrize(
    ("kind", "payload", "needed"),
    [
        (Kind.CHAT, _chat(), {C.CHAT}),
        (Kind.COMPLETIONS, {"prompt": "hi"}, {C.COMPLETIONS}),
        (Kind.EMBEDDINGS, {"input": ["a", "b"]}, {C.EMBEDDINGS}),
        (Kind.MODERATIONS, {"input": "a"}, {C.MODERATION}),
        (Kind.CHAT, _chat(TEXT), {C.CHAT}),
        (Kind.CHAT, _chat(TEXT, IMAGE_URL), {C.CHAT, C.VISION}),
        (Kind.CHAT, _chat(INPUT_IMAGE), {C.CHAT, C.VISION}),
        (Kind.CHAT, _chat(tools=TOOLS), {C.CHAT, C.TOOLS}),
        (Kind.CHAT, _chat(tools=[]), {C.CHAT}),
        (Kind.CHAT, _chat(response_format={"type": "json_object"}), {C.CHAT, C.JSON}),
        (Kind.CHAT, _chat(response_format={"type": "json_schema"}), {C.CHAT, C.JSON}),
        (Kind.CHAT, _chat(response_format={"type": "text"}), {C.CHAT}),
        (
            Kind.CHAT,
            _chat(IMAGE_URL, tools=TOOLS, response_format={"type": "json_object"}),
            {C.CHAT, C.VISION, C.TOOLS, C.JSON},
        ),
        (Kind.CHAT, {"messages": "not a list"}, {C.CHAT}),
    ],
)
def test_required_capabilities(kind: Kind, payload: dict[str, Any], needed: set[C]) -> None:
    assert required_capabilities(kind, payload) == needed


REGISTRY = parse_registry(
    """
models:
  - {name: text-only, endpoint: 'http://a:1/v1', tier: small, capabilities: [chat]}
  - {name: sees, endpoint: 'http://b:1/v1', tier: medium, capabilities: [chat, vision]}
""",
    "models.yaml",
)


@pytest.mark.parametrize("image", [IMAGE_URL, INPUT_IMAGE])
def test_named_models_and_the_router_agree_on_images(image: dict[str, Any]) -> None:
    payload = _chat(TEXT, image)
    _, key = mint_key("k")
    with pytest.raises(InvalidRequest, match="vision"):
        plan(REGISTRY, key, Kind.CHAT, dict(payload, model="text-only"))
    assert plan(REGISTRY, key, Kind.CHAT, dict(payload, model="sees")).targets[0].name == "sees"
    # The classification says text only; the router still reads the body.
    decision = decide_auto(REGISTRY, key, payload, prompt_tokens=20)
    assert [m.name for m in decision.targets] == ["sees"]
    assert next(x.why for x in decision.candidates if x.model.name == "text-only") == (
        "cannot do vision"
    )
