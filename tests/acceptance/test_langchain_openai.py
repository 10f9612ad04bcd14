"""langchain-openai's ``ChatOpenAI``, unchanged, against `edgeroute serve` and llama.cpp's
real server (SmolLM2). Tool binding and structured output that succeeds are tested
against the scripted upstream (tests/unit/test_langchain_openai.py): SmolLM2 on llama.cpp
cannot call tools, and the acceptance registry does not declare it JSON-capable.
"""

from __future__ import annotations

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.support.gateway import GatewayProcess


@pytest.fixture(scope="module")
def chat(gateway: GatewayProcess, api_key: str) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=gateway.url + "/v1",
        api_key=api_key,  # type: ignore[arg-type]
        model="smollm2-135m",
        max_tokens=16,  # type: ignore[call-arg]
        max_retries=0,
        timeout=60,
    )


def test_invoke(chat: ChatOpenAI) -> None:
    answer = chat.invoke([SystemMessage("Be brief."), HumanMessage("Say hello.")])
    assert isinstance(answer, AIMessage) and str(answer.content).strip()
    assert answer.response_metadata["model_name"] == "smollm2-135m"
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0


def test_stream(chat: ChatOpenAI) -> None:
    chunks = list(chat.stream("Count from one to five."))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks).strip()


def test_stream_with_usage(gateway: GatewayProcess, api_key: str) -> None:
    chat = ChatOpenAI(
        base_url=gateway.url + "/v1",
        api_key=api_key,  # type: ignore[arg-type]
        model="smollm2-135m",
        max_tokens=8,  # type: ignore[call-arg]
        max_retries=0,
        stream_usage=True,
    )
    whole = None
    for piece in chat.stream("Say hi."):
        whole = piece if whole is None else whole + piece
    assert whole is not None and whole.usage_metadata is not None
    assert whole.usage_metadata["input_tokens"] > 0


class Colour(BaseModel):
    name: str


def test_structured_output_on_a_model_without_json_is_a_clear_400(
    gateway: GatewayProcess, api_key: str
) -> None:
    chat = ChatOpenAI(
        base_url=gateway.url + "/v1",
        api_key=api_key,  # type: ignore[arg-type]
        model="chat-only",  # declares no json capability
        max_retries=0,
    )
    structured = chat.with_structured_output(Colour, method="json_schema")
    with pytest.raises(openai.BadRequestError) as caught:
        structured.invoke("Name a colour.")
    assert "json" in caught.value.message.lower()


def test_bad_key_is_authentication_error(gateway: GatewayProcess) -> None:
    chat = ChatOpenAI(
        base_url=gateway.url + "/v1",
        api_key="er-wrong",  # type: ignore[arg-type]
        model="smollm2-135m",
        max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError):
        chat.invoke("hi")


def test_unknown_model_is_not_found(gateway: GatewayProcess, api_key: str) -> None:
    chat = ChatOpenAI(
        base_url=gateway.url + "/v1",
        api_key=api_key,  # type: ignore[arg-type]
        model="no-such-model",
        max_retries=0,
    )
    with pytest.raises(openai.NotFoundError):
        chat.invoke("hi")
