"""Translation between OpenAI chat requests and Bedrock's Converse API, both ways:
messages, system prompts, images, tools and tool results in; text, tool calls, stop
reasons and usage out, whole or as stream events."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import InvalidRequest
from edgeroute.types import Json, Kind, Usage
from edgeroute.wire.chunks import (
    answer_choice,
    chunk,
    delta_choice,
    new_head,
    tool_arguments,
    usage_chunk,
)

_DATA_URL = re.compile(r"data:image/([a-zA-Z]+);base64,(.*)", re.DOTALL)
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _image(part: Json) -> Json:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    match = _DATA_URL.fullmatch(str(url or ""))
    if match is None:
        raise InvalidRequest(
            "Bedrock takes images as bytes: send 'image_url.url' as a data: URL "
            "(data:image/png;base64,...), not a link.",
            param="messages",
        )
    fmt = _IMAGE_FORMATS.get(match.group(1).lower())
    if fmt is None:
        raise InvalidRequest(
            f"Image type '{match.group(1)}' is not accepted by Bedrock; send png, jpeg, gif "
            "or webp.",
            param="messages",
        )
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except binascii.Error as exc:
        raise InvalidRequest("An image data: URL is not valid base64.", param="messages") from exc
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _blocks(content: Any) -> list[Json]:
    if not isinstance(content, list):
        text = _text(content)
        return [{"text": text}] if text else []
    blocks: list[Json] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):  # Converse rejects blank text blocks
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image(part))
        else:
            raise InvalidRequest(
                f"Content parts of type '{kind}' cannot be sent to Bedrock; send 'text' and "
                "'image_url' parts.",
                param="messages",
            )
    return blocks


def _tool_use(call: Any) -> Json:
    if not isinstance(call, dict):
        raise InvalidRequest("Each of 'tool_calls' must be an object.", param="messages")
    function = call.get("function") or {}
    arguments = tool_arguments(function.get("arguments"))
    if arguments is None:
        raise InvalidRequest(
            f"Tool call '{call.get('id')}' has 'arguments' that are not a JSON object; Bedrock "
            "needs the object the model produced.",
            param="messages",
        )
    return {
        "toolUse": {"toolUseId": call.get("id"), "name": function.get("name"), "input": arguments}
    }


def _messages(messages: list[Any]) -> tuple[list[Json], list[Json]]:
    """(system blocks, Converse messages); same-role neighbours merge, as Converse requires
    alternating roles and tool results travel in user messages."""
    system: list[Json] = []
    out: list[Json] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            if text := _text(content):
                system.append({"text": text})
            continue
        if role == "user":
            blocks = _blocks(content)
        elif role == "assistant":
            blocks = _blocks(content) + [_tool_use(c) for c in message.get("tool_calls") or ()]
        elif role == "tool":
            result = {
                "toolUseId": message.get("tool_call_id"),
                "content": [{"text": _text(content)}],
            }
            role, blocks = "user", [{"toolResult": result}]
        else:
            raise InvalidRequest(
                f"Messages with role '{role}' cannot be sent to Bedrock; use system, user, "
                "assistant and tool.",
                param="messages",
            )
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _tool_config(payload: Json, messages: list[Json]) -> Json | None:
    uses_tools = any(
        "toolUse" in block or "toolResult" in block for m in messages for block in m["content"]
    )
    specs: list[Json] = []
    for tool in payload.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type", "function") != "function":
            raise InvalidRequest("Bedrock takes tools of type 'function' only.", param="tools")
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        spec: Json = {"name": function.get("name"), "inputSchema": {"json": schema}}
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    choice = payload.get("tool_choice")
    if not specs:
        if uses_tools:  # Converse refuses toolUse/toolResult blocks without a toolConfig
            raise InvalidRequest(
                "Bedrock needs 'tools' whenever messages carry tool calls or results; send "
                "the tool definitions with the conversation.",
                param="tools",
            )
        return None
    if choice == "none" and not uses_tools:
        return None  # Converse cannot forbid tools, but it can be sent none
    config: Json = {"tools": specs}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name")}}
    return config


def to_converse(kind: Kind, payload: Json, model: ModelSpec) -> Json:
    """The Converse/ConverseStream keyword arguments for an OpenAI chat or completion request."""
    if (payload.get("n") or 1) > 1:
        raise InvalidRequest("Bedrock returns one choice per request; leave 'n' at 1.", param="n")
    if kind is Kind.COMPLETIONS:
        prompt = payload.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise InvalidRequest("Bedrock models take one prompt string.", param="prompt")
        chat: list[Any] = [{"role": "user", "content": prompt}]
    else:
        chat = payload.get("messages") or []
    system, messages = _messages(chat)
    request: Json = {"modelId": model.wire_name, "messages": messages}
    if system:
        request["system"] = system
    inference: Json = {}
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if max_tokens:
        inference["maxTokens"] = max_tokens
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP")):
        if payload.get(ours) is not None:
            inference[theirs] = payload[ours]
    if stop := payload.get("stop"):
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        request["inferenceConfig"] = inference
    if (tool_config := _tool_config(payload, messages)) is not None:
        request["toolConfig"] = tool_config
    return request


# ---- Converse -> OpenAI -----------------------------------------------------------------


def _usage(usage: Any) -> Json | None:
    if not isinstance(usage, dict) or not isinstance(usage.get("inputTokens"), int):
        return None
    # inputTokens leaves out cached tokens; OpenAI's prompt_tokens counts them.
    cached = int(usage.get("cacheReadInputTokens") or 0)
    prompt = usage["inputTokens"] + cached + int(usage.get("cacheWriteInputTokens") or 0)
    out = Usage(prompt, int(usage.get("outputTokens") or 0)).to_openai()
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _tool_call(use: Json) -> Json:
    arguments = json.dumps(use.get("input") or {})
    function = {"name": use.get("name"), "arguments": arguments}
    return {"id": use.get("toolUseId"), "type": "function", "function": function}


def from_converse(kind: Kind, response: Json, model: ModelSpec) -> Json:
    content = ((response.get("output") or {}).get("message") or {}).get("content") or []
    text = "".join(str(b["text"]) for b in content if "text" in b)
    calls = [_tool_call(b["toolUse"]) for b in content if "toolUse" in b]
    finish = _FINISH.get(str(response.get("stopReason")), "stop")
    message: Json = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    chat = kind is Kind.CHAT
    body = {
        **new_head(chat, model.name, chunk=False),
        "choices": [answer_choice(chat, message, finish)],
    }
    if (usage := _usage(response.get("usage"))) is not None:
        body["usage"] = usage
    return body


class ConverseStreamState:
    """Turns ConverseStream events into OpenAI chunks; tool calls are numbered in order."""

    def __init__(self, kind: Kind, model: ModelSpec) -> None:
        self.chat = kind is Kind.CHAT
        self.head = new_head(self.chat, model.name, chunk=True)
        self.tools: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool_calls index
        self.stopped = False

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return chunk(self.head, [delta_choice(self.chat, delta, finish)])

    def on(self, event: Json) -> list[Json]:
        if "messageStart" in event:
            return [self._chunk({"role": "assistant", "content": ""})]
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            use = (start.get("start") or {}).get("toolUse")
            if not use:
                return []
            self.tools[start.get("contentBlockIndex", 0)] = index = len(self.tools)
            call = {**_tool_call(use), "index": index}
            call["function"]["arguments"] = ""
            return [self._chunk({"tool_calls": [call]})]
        if "contentBlockDelta" in event:
            block = event["contentBlockDelta"]
            delta = block.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})]
            tool = self.tools.get(block.get("contentBlockIndex", 0))
            if "toolUse" in delta and tool is not None:
                arguments = {"arguments": delta["toolUse"].get("input", "")}
                return [self._chunk({"tool_calls": [{"index": tool, "function": arguments}]})]
            return []  # reasoning content and citations have no OpenAI chunk
        if "messageStop" in event:
            self.stopped = True
            finish = _FINISH.get(str(event["messageStop"].get("stopReason")), "stop")
            return [self._chunk({}, finish)]
        if "metadata" in event:
            usage = _usage(event["metadata"].get("usage"))
            return [usage_chunk(self.head, usage)] if usage else []
        return []
