"""The pipeline's chat request as a Messages request for an Anthropic-compatible upstream
(``protocol: anthropic``), and its answer back as a chat completion or chat chunks.

Invariant: what a Messages upstream cannot do is refused with a 400 naming the field
(``n`` over 1, ``response_format``, ``logprobs``, penalties, ``seed``, ``logit_bias``),
never dropped; everything else lands in the Messages request. A stop sequence that
ended the answer is named in the choice's ``stop_reason``, as vLLM names it, so the
Messages route can give it back as ``stop_sequence``.
"""

from __future__ import annotations

import json
from typing import Any

from edgeroute.errors import InvalidRequest
from edgeroute.types import Json, Usage
from edgeroute.wire.chunks import (
    answer_choice,
    chunk,
    delta_choice,
    new_head,
    tool_arguments,
    usage_chunk,
)
from edgeroute.wire.tokens import text_of_messages

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` when neither the request nor the model's entry gives one: Messages
requires it."""
_REFUSED = {
    "response_format": "Messages upstreams take no response format; describe the JSON "
    "wanted in the prompt, or call another model",
    "logprobs": "Messages upstreams give no log probabilities; leave 'logprobs' out",
    "top_logprobs": "Messages upstreams give no log probabilities; leave it out",
    "presence_penalty": "Messages upstreams take no penalties; leave it out",
    "frequency_penalty": "Messages upstreams take no penalties; leave it out",
    "logit_bias": "Messages upstreams take no logit bias; leave it out",
    "seed": "Messages upstreams take no seed; leave it out",
}


def _refuse_unsupported(payload: Json, model: str) -> None:
    for name, why in _REFUSED.items():
        if payload.get(name) not in (None, False):
            raise InvalidRequest(f"Model '{model}' cannot honour '{name}': {why}.", param=name)
    if (payload.get("n") or 1) > 1:
        raise InvalidRequest(
            f"Model '{model}' answers one choice per request: leave 'n' out or send 1.",
            param="n",
        )


def _image_block(url: str) -> Json:
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[Json] = []
    for part in content or []:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            blocks.append(_image_block(str((part.get("image_url") or {}).get("url", ""))))
        else:
            raise InvalidRequest(
                f"Content parts of type '{part.get('type')}' cannot be sent to a Messages "
                "upstream; send 'text' and 'image_url' parts.",
                param="messages",
            )
    return blocks


def _tool_use(call: Json, where: str) -> Json:
    function = call.get("function") or {}
    arguments = tool_arguments(function.get("arguments"))
    if arguments is None:
        raise InvalidRequest(
            f"'{where}.function.arguments' must be a JSON object in text for a Messages "
            "upstream. Send the arguments the model gave.",
            param=f"{where}.function.arguments",
        )
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": arguments,
    }


def _turns(messages: list[Json]) -> tuple[str, list[Json]]:
    """(system text, turns): system and developer messages join the system prompt; tool
    messages become ``tool_result`` blocks of one user turn."""
    system: list[str] = []
    turns: list[Json] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of_messages([message]))
            continue
        if role in ("tool", "function"):
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id") or message.get("name") or "",
                "content": text_of_messages([message]),
            }
            if turns and turns[-1]["role"] == "user" and turns[-1].get("results"):
                turns[-1]["content"].append(result)
            else:
                turns.append({"role": "user", "content": [result], "results": True})
            continue
        blocks = _blocks(message.get("content"))
        for j, call in enumerate(message.get("tool_calls") or []):
            blocks.append(_tool_use(call, f"messages[{i}].tool_calls[{j}]"))
        turns.append({"role": "assistant" if role == "assistant" else "user", "content": blocks})
    for turn in turns:
        turn.pop("results", None)
    return "\n\n".join(s for s in system if s), turns


def _tool_choice(choice: Any, parallel: Any) -> Json | None:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        out: Json = {"type": "tool", "name": name}
    elif choice in ("auto", "required", "none"):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    elif parallel is False:
        out = {"type": "auto"}
    else:
        return None
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def messages_request(payload: Json, model: str, wire_model: str, max_tokens: int | None) -> Json:
    """The Messages request for a chat request to ``model`` (upstream name ``wire_model``;
    ``max_tokens``: the model's default when the request gives none)."""
    _refuse_unsupported(payload, model)
    system, turns = _turns(payload.get("messages") or [])
    body: Json = {
        "model": wire_model,
        "messages": turns,
        "max_tokens": payload.get("max_completion_tokens")
        or payload.get("max_tokens")
        or max_tokens
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = system
    for name in ("temperature", "top_p", "top_k"):
        if payload.get(name) is not None:
            body[name] = payload[name]
    stop = payload.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if payload.get("tools"):
        body["tools"] = [
            {
                "name": (t.get("function") or {}).get("name"),
                **(
                    {"description": t["function"]["description"]}
                    if (t.get("function") or {}).get("description")
                    else {}
                ),
                "input_schema": (t.get("function") or {}).get("parameters")
                or {"type": "object", "properties": {}},
            }
            for t in payload["tools"]
        ]
    choice = _tool_choice(payload.get("tool_choice"), payload.get("parallel_tool_calls"))
    if choice is not None:
        body["tool_choice"] = choice
    if payload.get("user"):
        body["metadata"] = {"user_id": payload["user"]}
    if payload.get("stream"):
        body["stream"] = True
    return body


def _finish(stop_reason: Any) -> str:
    return FINISH_REASONS.get(str(stop_reason), "stop")


def message_usage(usage: Any) -> Usage:
    usage = usage if isinstance(usage, dict) else {}
    prompt = sum(
        int(usage.get(k) or 0)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(prompt, int(usage.get("output_tokens") or 0))


def chat_from_message(body: Json, model: str) -> Json:
    """A Message as a chat completion named after ``model`` (the registry's name)."""
    texts: list[str] = []
    calls: list[Json] = []
    for block in body.get("content") or []:
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    message: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    choice = answer_choice(True, message, _finish(body.get("stop_reason")))
    if body.get("stop_reason") == "stop_sequence":
        choice["stop_reason"] = body.get("stop_sequence")
    return {
        **new_head(True, model, chunk=False),
        "choices": [choice],
        "usage": message_usage(body.get("usage")).to_openai(),
    }


class ChatChunks:
    """Feed it a Messages stream's events in order; it answers with chat chunks."""

    def __init__(self, model: str) -> None:
        self.head = new_head(True, model, chunk=True)
        self.input_tokens = 0
        self.output_tokens = 0
        self.tool_index = -1  # the chat index of the tool call being streamed
        self.tool_blocks: dict[int, int] = {}  # Messages block index → chat tool index
        self.done = False

    def _chunk(self, delta: Json, finish: str | None = None) -> Json:
        return chunk(self.head, [delta_choice(True, delta, finish)])

    def feed(self, event: Json) -> list[Json]:
        kind = event.get("type")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage")
            self.input_tokens = message_usage(usage).prompt_tokens
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.tool_index += 1
                self.tool_blocks[int(event.get("index", 0))] = self.tool_index
                function = {"name": block.get("name"), "arguments": ""}
                call = {"index": self.tool_index, "id": block.get("id"), "type": "function"}
                return [self._chunk({"tool_calls": [{**call, "function": function}]})]
            text = block.get("text")
            return [self._chunk({"content": text})] if text else []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tool_blocks.get(int(event.get("index", 0)), self.tool_index)
                function = {"arguments": delta.get("partial_json", "")}
                return [self._chunk({"tool_calls": [{"index": index, "function": function}]})]
            return []
        if kind == "message_delta":
            delta = event.get("delta") or {}
            usage = event.get("usage") or {}
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
            if usage.get("input_tokens") is not None:
                self.input_tokens = message_usage(usage).prompt_tokens
            last = self._chunk({}, _finish(delta.get("stop_reason")))
            if delta.get("stop_reason") == "stop_sequence":
                last["choices"][0]["stop_reason"] = delta.get("stop_sequence")
            return [last]
        if kind == "message_stop":
            self.done = True
            usage = Usage(self.input_tokens, self.output_tokens).to_openai()
            return [usage_chunk(self.head, usage)]
        return []  # ping, content_block_stop, and event types added later
