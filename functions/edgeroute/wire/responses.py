"""OpenAI's Responses API onto chat completions and back: pure functions, no I/O.

Invariant: every field of a Responses request is either translated into the chat
request the pipeline runs, or refused with a 400 naming it (``param``) and the fix;
nothing is silently dropped. A chat completion maps back onto one Response object
(a ``message`` output item for text, one ``function_call`` item per tool call).
Streaming lives in ``wire.responses_stream``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from edgeroute.errors import InvalidRequest
from edgeroute.types import Json
from edgeroute.wire.schemas import Flag, Number, RequestBody, TokenCount

# Fields a Responses request may carry; any other is refused, naming it.
_KNOWN = frozenset(
    {
        "model",
        "input",
        "instructions",
        "previous_response_id",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "background",
        "store",
        "metadata",
        "user",
        "truncation",
        "reasoning",
        "include",
        "service_tier",
    }
)
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_PASSED = ("temperature", "top_p", "parallel_tool_calls", "user")


class ResponsesRequest(RequestBody):
    """``POST /v1/responses``: the typed fields; the rest is checked by
    ``check_supported`` and the translation."""

    model: str
    input: str | list[Any]
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: Flag | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: TokenCount | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    stream: Flag | None = None
    background: Flag | None = None
    store: Flag | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None


def new_id(prefix: str) -> str:
    """An id as OpenAI shapes them: ``resp_…``, ``msg_…``, ``fc_…``."""
    return f"{prefix}_{os.urandom(12).hex()}"


def _refuse(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def check_supported(body: Json) -> None:
    """Refuse, with a 400 naming the field and the fix, what edgeroute cannot honour."""
    for name in body:
        if name not in _KNOWN:
            raise _refuse(
                name, f"'{name}' is not supported by edgeroute's Responses API. Remove it."
            )
    if body.get("truncation") not in (None, "disabled"):
        raise _refuse(
            "truncation",
            "Only truncation 'disabled' is supported: the gateway does not drop context. "
            "Leave out 'truncation' or set it to 'disabled'.",
        )
    if body.get("reasoning") not in (None, {}):
        raise _refuse(
            "reasoning",
            "'reasoning' is not supported: the models behind this gateway expose no "
            "reasoning controls. Leave out 'reasoning'.",
        )
    if body.get("include"):
        raise _refuse("include", "'include' is not supported. Leave it out or send [].")
    if body.get("service_tier") not in (None, "auto", "default"):
        raise _refuse("service_tier", "Only service_tier 'auto' or 'default' is supported.")


def _content(content: Any, where: str) -> str | list[Json]:
    """A message's content as chat takes it: a string, or text and image parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}' must be a string or a list of content parts.", param=where)
    parts: list[Json] = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: Json = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_image":
            raise _refuse(
                f"{here}.file_id",
                "Images by file_id are not supported: send 'image_url' (an https or "
                "data: URL) instead.",
            )
        else:
            raise _refuse(
                f"{here}.type",
                f"Content part type {kind!r} is not supported: send input_text, "
                "output_text or input_image (with image_url).",
            )
    if all(p["type"] == "text" for p in parts):  # plain text: what every upstream reads
        return "\n".join(p["text"] for p in parts)
    return parts


def input_items(body: Json) -> list[Json]:
    """The request's input as a list of items (a string input is one user message),
    each with an id, as ``GET /v1/responses/{id}/input_items`` lists them."""
    raw = body.get("input")
    items: Any = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or raw == "":
        raise InvalidRequest(
            "'input' must be a non-empty string or a non-empty list of input items.",
            param="input",
        )
    out: list[Json] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest(f"'input[{i}]' must be an object.", param=f"input[{i}]")
        kind = item.get("type", "message")
        entry = dict(item)
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                content = [{"type": part, "text": content}]
            entry = {"type": "message", "role": item.get("role"), "content": content}
        entry.setdefault("id", new_id({"message": "msg"}.get(str(kind), "item")))
        entry.setdefault("status", "completed")
        out.append(entry)
    return out


def chat_messages(items: list[Json]) -> list[Json]:
    """Input items as chat messages: function calls in a row become one assistant
    message with ``tool_calls``; their outputs become ``tool`` messages."""
    messages: list[Json] = []
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            role = _ROLES.get(str(item.get("role")))
            if role is None:
                raise InvalidRequest(
                    f"'input[{i}].role' must be one of user, assistant, system, developer.",
                    param=f"input[{i}].role",
                )
            messages.append(
                {"role": role, "content": _content(item.get("content"), f"input[{i}].content")}
            )
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": output if isinstance(output, str) else str(output),
                }
            )
        else:
            raise _refuse(
                f"input[{i}].type",
                f"Input item type {kind!r} is not supported: send message, function_call "
                "or function_call_output items (for earlier turns, previous_response_id).",
            )
    return messages


def _tools(tools: Any) -> list[Json]:
    out: list[Json] = []
    for i, tool in enumerate(tools or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise _refuse(
                f"tools[{i}].type",
                f"Tool type {kind!r} is not supported: edgeroute runs no built-in tools "
                "(web_search, file_search, computer_use, code_interpreter, mcp ...). "
                "Declare a 'function' tool and run it yourself.",
            )
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _refuse(
        "tool_choice",
        "tool_choice must be 'auto', 'none', 'required' or {\"type\": \"function\", "
        '"name": ...}.',
    )


def _response_format(text: Any) -> Json | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise _refuse(
        "text.format",
        'text.format must be {"type": "text"}, {"type": "json_object"} or '
        '{"type": "json_schema", "name": ..., "schema": {...}}.',
    )


def to_chat(body: Json, items: list[Json], history: list[Json]) -> Json:
    """The chat completions request for a Responses request whose input is ``items``,
    after the earlier turns ``history`` (chat messages kept from previous_response_id)."""
    messages: list[Json] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += history + chat_messages(items)
    chat: Json = {"model": body.get("model"), "messages": messages}
    chat.update({k: body[k] for k in _PASSED if body.get(k) is not None})
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def usage_of(chat_usage: Any) -> Json | None:
    """Chat usage as Responses reports it."""
    if not isinstance(chat_usage, dict):
        return None
    prompt, completion = (
        int(chat_usage.get("prompt_tokens", 0)),
        int(chat_usage.get("completion_tokens", 0)),
    )
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def message_item(text: str, status: str = "completed", item_id: str | None = None) -> Json:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call_item(call: Json, item_id: str | None = None) -> Json:
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "id": item_id or new_id("fc"),
        "call_id": call.get("id") or new_id("call"),
        "name": function.get("name", ""),
        "arguments": function.get("arguments") or "",
        "status": "completed",
    }


def shell(response_id: str, body: Json, status: str, created_at: float | None = None) -> Json:
    """A Response object with no output yet: what ``background`` answers at once and
    what streams start with."""
    text = body.get("text") if isinstance(body.get("text"), dict) else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(created_at if created_at is not None else time.time()),
        "status": status,
        "background": bool(body.get("background")),
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": text or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def finished(response: Json, finish_reason: Any, output: list[Json], usage: Json | None) -> Json:
    """``response`` completed (or incomplete, when the model ran out of tokens)."""
    done = dict(response, output=output, usage=usage, status="completed")
    if finish_reason == "length":
        done["status"] = "incomplete"
        done["incomplete_details"] = {"reason": "max_output_tokens"}
        for item in output:
            if item["type"] == "message":
                item["status"] = "incomplete"
    return done


def from_chat(completion: Json, response: Json) -> Json:
    """A chat completion as the Response ``response`` (a shell) finished."""
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    output: list[Json] = []
    if message.get("content"):
        output.append(message_item(str(message["content"])))
    output += [function_call_item(c) for c in message.get("tool_calls") or []]
    done = finished(
        response, choice.get("finish_reason"), output, usage_of(completion.get("usage"))
    )
    done["model"] = completion.get("model", response.get("model"))
    return done


def output_messages(response: Json) -> list[Json]:
    """A finished Response's output as chat messages, for the next turn's history."""
    items = [i for i in response.get("output", []) if i["type"] in ("message", "function_call")]
    return chat_messages(items)


def failed(response: Json, code: str, message: str) -> Json:
    return dict(response, status="failed", error={"code": code, "message": message})
