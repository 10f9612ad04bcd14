"""A Messages request as the chat completions request the pipeline serves, and the chat
answer back as a Message.

Invariant: every field of a checked ``MessagesRequest`` lands in the chat request (or was
refused by the schema); the chat answer's text, tool calls, finish reason and usage all
land in the Message. Tool-use ids pass through unchanged both ways, so a client's
``tool_result`` finds the call it answers.
"""

from __future__ import annotations

import json
from typing import Any

from edgeroute.errors import UpstreamError
from edgeroute.types import Json, Usage
from edgeroute.wire.anthropic.schema import (
    ImageBlock,
    Message,
    MessagesRequest,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from edgeroute.wire.chunks import tool_arguments

# OpenAI finish reasons as Anthropic stop reasons ("stop" may also be a stop sequence).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
TOOL_ERROR_PREFIX = "Error: "
"""Prefixed to a ``tool_result`` with ``is_error``: chat tool messages have no such flag."""


def message_id(request_id: str) -> str:
    """A Message's id, from the request's (``req_<hex>`` → ``msg_<hex>``)."""
    return "msg_" + request_id.removeprefix("req_")


def _text(blocks: str | list[TextBlock] | None) -> str:
    if blocks is None or isinstance(blocks, str):
        return blocks or ""
    return "\n\n".join(b.text for b in blocks)


def _image_part(block: ImageBlock) -> Json:
    source = block.source
    url = source.url if source.type == "url" else f"data:{source.media_type};base64,{source.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: ToolResultBlock) -> Json:
    text = _text(block.content)
    if block.is_error:
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _user_turn(message: Message) -> list[Json]:
    """Tool results first (a chat tool message must follow the assistant's call), then
    the text and images as one user message."""
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    tools: list[Json] = []
    parts: list[Json] = []
    for block in message.content:
        if isinstance(block, ToolResultBlock):
            tools.append(_tool_message(block))
        elif isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        else:
            raise _misplaced("tool_use", "user")
    if not parts:
        return tools
    if all(p["type"] == "text" for p in parts):  # plain text: what every upstream takes
        return [*tools, {"role": "user", "content": "\n\n".join(p["text"] for p in parts)}]
    return [*tools, {"role": "user", "content": parts}]


def _assistant_turn(message: Message) -> Json:
    if isinstance(message.content, str):
        return {"role": "assistant", "content": message.content}
    texts: list[str] = []
    calls: list[Json] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            arguments = json.dumps(block.input, ensure_ascii=False)
            function = {"name": block.name, "arguments": arguments}
            calls.append({"id": block.id, "type": "function", "function": function})
        else:
            raise _misplaced(block.type, "assistant")
    turn: Json = {"role": "assistant"}
    if texts or not calls:
        turn["content"] = "".join(texts)
    if calls:
        turn["tool_calls"] = calls
    return turn


def _misplaced(kind: str, role: str) -> ValueError:
    return ValueError(f"'{kind}' blocks cannot be in a message with role '{role}'")


def misplaced_block(request: MessagesRequest) -> tuple[str, str] | None:
    """The first block in a turn that cannot hold it, as (field, message); None if all
    are in place. Checked before translating, so the caller gets a 400 naming it."""
    allowed = {
        "user": ("text", "image", "tool_result"),
        "assistant": ("text", "tool_use"),
        "system": ("text",),
    }
    for i, message in enumerate(request.messages):
        if isinstance(message.content, str):
            continue
        for j, block in enumerate(message.content):
            if block.type not in allowed[message.role]:
                return (
                    f"messages[{i}].content[{j}]",
                    f"'{block.type}' blocks cannot be in a '{message.role}' message; "
                    f"a '{message.role}' message holds {', '.join(allowed[message.role])}",
                )
    return None


def _tool_choice(choice: ToolChoice) -> Any:
    if choice.type == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


def chat_request(request: MessagesRequest) -> Json:
    """The chat completions request for a checked Messages request (``misplaced_block``
    found nothing). A stream asks for usage, which ``message_delta`` reports."""
    messages: list[Json] = []
    system = _text(request.system)
    if system:
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        if message.role == "system":
            messages.append({"role": "system", "content": _user_turn(message)[0]["content"]})
        elif message.role == "user":
            messages.extend(_user_turn(message))
        else:
            messages.append(_assistant_turn(message))
    chat: Json = {"model": request.model, "messages": messages, "max_tokens": request.max_tokens}
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(request, name)
        if value is not None:
            chat[name] = value
    if request.stop_sequences:
        chat["stop"] = list(request.stop_sequences)
    if request.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    if request.tools:
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.input_schema,
                },
            }
            for t in request.tools
        ]
    if request.tool_choice is not None:
        chat["tool_choice"] = _tool_choice(request.tool_choice)
        if request.tool_choice.disable_parallel_tool_use:
            chat["parallel_tool_calls"] = False
    if request.metadata is not None and request.metadata.user_id:
        chat["user"] = request.metadata.user_id
    return chat


def stop_reason(choice: Json, stop_sequences: list[str] | None) -> tuple[str | None, str | None]:
    """(stop_reason, stop_sequence) for a chat choice. A stop sequence is named when the
    upstream says which one matched (vLLM's and edgeroute's ``stop_reason`` in the
    choice); otherwise a stop is ``end_turn``."""
    finish = choice.get("finish_reason")
    if finish is None:
        return None, None
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and matched in (stop_sequences or ()):
        return "stop_sequence", matched
    return STOP_REASONS.get(str(finish), "end_turn"), None


def tool_input(arguments: Any, model: str) -> Json:
    """A tool call's arguments (JSON text) as the object Anthropic's ``input`` is."""
    value = tool_arguments(arguments)
    if value is None:
        raise UpstreamError(
            f"Model '{model}' called a tool with arguments that are not a JSON object. "
            "Retry the request.",
            code="upstream_malformed",
            detail=f"tool arguments {str(arguments)[:200]!r}",
        )
    return value


def anthropic_usage(usage: Usage) -> Json:
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def message_from_chat(body: Json, msg_id: str, stop_sequences: list[str] | None) -> Json:
    """A chat completion (buffered) as a Message."""
    model = str(body.get("model") or "")
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[Json] = []
    text = message.get("content")
    if isinstance(text, list):  # content parts: their text
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{len(content)}",
                "name": function.get("name", ""),
                "input": tool_input(function.get("arguments"), model),
            }
        )
    reason, sequence = stop_reason(choice, stop_sequences)
    usage = Usage.from_openai(body.get("usage")) or Usage()
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason or "end_turn",
        "stop_sequence": sequence,
        "usage": anthropic_usage(usage),
    }
