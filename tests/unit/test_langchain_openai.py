"""langchain-openai's ``ChatOpenAI``, unchanged, calling tools and asking for structured
output through the gateway's app in process: the scripted upstream answers with tool
calls and JSON, which SmolLM2 on llama.cpp (the acceptance tests' model) cannot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import Answer, ScriptedUpstream

REGISTRY = """
models:
  - {name: tooled, endpoint: 'http://tooled:1/v1', tier: small,
     capabilities: [chat, tools, json], retries: 0}
"""
CALL = {"id": "call_7", "name": "get_weather", "arguments": '{"city": "Oslo"}'}


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: 3C, snow"


@pytest.fixture
async def chat() -> AsyncIterator[ChatOpenAI]:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw)
    transport = httpx2.ASGITransport(app=Client(gw, secret).app)
    async with httpx2.AsyncClient(transport=transport) as http:
        yield ChatOpenAI(
            base_url="http://gateway/v1",
            api_key=secret,  # type: ignore[arg-type]
            model="tooled",
            max_retries=0,
            http_async_client=http,
        )


async def test_bind_tools_round_trip(chat: ChatOpenAI, upstream: ScriptedUpstream) -> None:
    upstream.script(
        "tooled",
        Answer("", tool_calls=(CALL,), finish="tool_calls"),
        Answer("Snowing in Oslo."),
    )
    with_tools = chat.bind_tools([get_weather])
    question = HumanMessage("Weather in Oslo?")
    first = await with_tools.ainvoke([question])
    assert isinstance(first, AIMessage)
    assert first.tool_calls == [
        {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_7", "type": "tool_call"}
    ]
    assert upstream.calls[0].payload["tools"][0]["function"]["name"] == "get_weather"

    result = get_weather.invoke(first.tool_calls[0]["args"])
    second = await with_tools.ainvoke(
        [question, first, ToolMessage(result, tool_call_id=first.tool_calls[0]["id"])]
    )
    assert second.content == "Snowing in Oslo."
    sent = upstream.calls[1].payload["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_7", "content": "Oslo: 3C, snow"}


async def test_streamed_tool_call(chat: ChatOpenAI, upstream: ScriptedUpstream) -> None:
    upstream.script("tooled", Answer("", tool_calls=(CALL,), finish="tool_calls"))
    pieces = [p async for p in chat.bind_tools([get_weather]).astream("Weather in Oslo?")]
    assert all(isinstance(p, AIMessageChunk) for p in pieces)
    merged = add_ai_message_chunks(*pieces)  # type: ignore[arg-type]
    assert isinstance(merged, AIMessageChunk)
    assert merged.tool_calls[0]["args"] == {"city": "Oslo"}


class Colour(BaseModel):
    name: str


async def test_structured_output_by_json_schema(
    chat: ChatOpenAI, upstream: ScriptedUpstream
) -> None:
    upstream.script("tooled", Answer('{"name": "blue"}'))
    colour = await chat.with_structured_output(Colour, method="json_schema").ainvoke("A colour?")
    assert colour == Colour(name="blue")
    sent = upstream.calls[0].payload["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Colour"
