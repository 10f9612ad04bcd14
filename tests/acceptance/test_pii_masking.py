"""PII modes end to end: `edgeroute serve` in front of llama.cpp's real server, through
the openai SDK, with a recording pass-through between them that keeps what llama.cpp was
sent. With `--pii mask` llama.cpp never sees the email or the card, and the caller reads
their own values in the model's answer, buffered and streamed (the model's tokens split
the placeholders); with `--pii block` the request is a 400 naming the classes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from tests.support.gateway import GatewayProcess
from tests.support.openai_sdk import error_field
from tests.support.recording_proxy import RecordingProxy

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
# SmolLM2-135M copies text after two examples of copying, at temperature 0.
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Repeat: apple pie"},
    {"role": "assistant", "content": "apple pie"},
    {"role": "user", "content": "Repeat: the blue door"},
    {"role": "assistant", "content": "the blue door"},
    {"role": "user", "content": f"Repeat: mail {EMAIL} card {CARD}"},
]


@pytest.fixture(scope="module")
def recorder(llama_url: str) -> Iterator[RecordingProxy]:
    with RecordingProxy(llama_url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def pii_gateway(recorder: RecordingProxy, workdir: Path) -> Iterator[GatewayProcess]:
    registry = workdir / "pii-models.yaml"
    model = {
        "name": "recorded",
        "protocol": "openai",
        "endpoint": recorder.url,
        "tier": "small",
        "capabilities": ["chat", "completions"],
        "context_window": 2048,
        "timeouts": {"connect": 2, "read": 30, "total": 60},
    }
    registry.write_text(yaml.safe_dump({"models": [model]}))
    env = {
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(workdir / "pii" / "edgeroute.db"),
    }
    with GatewayProcess(env, workdir) as process:
        yield process


_KEYS = itertools.count()


def _client(gateway: GatewayProcess, mode: str) -> openai.OpenAI:
    # Key names are unique per tenant: each client gets its own key of the mode's tenant.
    name = f"pii-{mode}-{next(_KEYS)}"
    key = gateway.create_key(name, "--tenant", f"pii-{mode}", "--pii", mode)["api_key"]
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=str(key), max_retries=0)


def test_mask_buffered(pii_gateway: GatewayProcess, recorder: RecordingProxy) -> None:
    client = _client(pii_gateway, "mask")
    seen = len(recorder.bodies)
    answer = client.chat.completions.create(
        model="recorded", messages=MESSAGES, max_tokens=30, temperature=0
    )
    assert answer.choices[0].message.content == f"mail {EMAIL} card {CARD}"
    sent = recorder.sent()
    assert len(recorder.bodies) == seen + 1
    assert EMAIL not in sent and "4111" not in sent
    assert "Repeat: mail [EMAIL_1] card [CARD_1]" in sent


def test_mask_streamed(pii_gateway: GatewayProcess, recorder: RecordingProxy) -> None:
    client = _client(pii_gateway, "mask")
    stream = client.chat.completions.create(
        model="recorded", messages=MESSAGES, max_tokens=30, temperature=0, stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == f"mail {EMAIL} card {CARD}"
    assert EMAIL not in recorder.sent() and "4111" not in recorder.sent()


def test_allow_forwards_as_sent(pii_gateway: GatewayProcess, recorder: RecordingProxy) -> None:
    client = _client(pii_gateway, "allow")
    client.chat.completions.create(model="recorded", messages=MESSAGES, max_tokens=4)
    assert EMAIL in recorder.sent()


def test_block_is_a_400_naming_the_classes(
    pii_gateway: GatewayProcess, recorder: RecordingProxy
) -> None:
    client = _client(pii_gateway, "block")
    seen = len(recorder.bodies)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="recorded", messages=MESSAGES, max_tokens=4)
    assert error_field(refused.value, "code") == "pii_detected"
    assert error_field(refused.value, "param") == "messages"
    message = str(error_field(refused.value, "message"))
    assert "(card, email)" in message and EMAIL not in message and "4111" not in message
    assert len(recorder.bodies) == seen  # nothing reached the model
