"""Adapter for Hugging Face TGI's native ``/generate`` and ``/generate_stream``.

TGI's native API takes one prompt string, so chat messages are rendered with
ChatML (the template most open chat models use); a model with another template
should be served through TGI's Messages API with the ``openai`` protocol instead.
"""

from __future__ import annotations

import json
from typing import Any

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import InvalidRequest, UpstreamError
from edgeroute.types import Chunks, Json, Kind, Usage
from edgeroute.upstreams.base import upstream_for
from edgeroute.upstreams.http import event_stream, post_json
from edgeroute.wire.chunks import (
    answer_choice,
    chunk,
    delta_choice,
    new_head,
    stream_ended_early,
    usage_chunk,
)
from edgeroute.wire.tokens import estimate_tokens

_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


def render_chatml(messages: list[Any]) -> str:
    parts = []
    for message in messages:
        content: Any = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(f"<|im_start|>{message.get('role', 'user')}\n{content or ''}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def to_tgi(kind: Kind, payload: Json) -> tuple[str, Json]:
    """The prompt and TGI ``parameters`` for an OpenAI-shaped request."""
    if kind is Kind.EMBEDDINGS:
        raise InvalidRequest("TGI's generate API serves no embeddings; use an embeddings model.")
    prompt: Any
    if kind is Kind.CHAT:
        prompt = render_chatml(payload.get("messages") or [])
    else:
        prompt = payload.get("prompt")
        if isinstance(prompt, list):
            if len(prompt) != 1 or not isinstance(prompt[0], str):
                raise InvalidRequest(
                    "TGI models take one prompt string: send 'prompt' as a string.",
                    param="prompt",
                )
            prompt = prompt[0]
    params: Json = {"details": True, "return_full_text": False}
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if max_tokens:
        params["max_new_tokens"] = max_tokens
    temperature = payload.get("temperature")
    if temperature is not None and temperature > 0:
        params["temperature"] = temperature
        params["do_sample"] = True
    else:
        params["do_sample"] = temperature is None  # temperature 0 means greedy
    for ours, theirs in (("top_p", "top_p"), ("seed", "seed")):
        if payload.get(ours) is not None:
            params[theirs] = payload[ours]
    stop = payload.get("stop")
    if stop:
        params["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return str(prompt or ""), params


class TGINative:
    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        prompt, params = to_tgi(kind, payload)
        params["decoder_input_details"] = True
        body = {"inputs": prompt, "parameters": params}
        response = await post_json(model.endpoint + "/generate", body, model)
        try:
            data = response.json()
            if isinstance(data, list):
                data = data[0]
            text = str(data["generated_text"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(
                f"{upstream_for(model)} answered without 'generated_text'.",
                code="upstream_malformed",
                detail=f"{model.endpoint}: {response.text[:200]!r}",
            ) from exc
        details = data.get("details") or {}
        prefill = details.get("prefill")
        prompt_tokens = len(prefill) if isinstance(prefill, list) and prefill else None
        completion_tokens = details.get("generated_tokens")
        usage = Usage(
            prompt_tokens or estimate_tokens(prompt), completion_tokens or estimate_tokens(text)
        )
        finish = _FINISH.get(str(details.get("finish_reason")), "stop")
        chat = kind is Kind.CHAT
        message = {"role": "assistant", "content": text}
        return {
            **new_head(chat, model.name, chunk=False),
            "choices": [answer_choice(chat, message, finish)],
            "usage": usage.to_openai(),
        }

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        prompt, params = to_tgi(kind, payload)
        chat = kind is Kind.CHAT
        head = new_head(chat, model.name, chunk=True)
        body = {"inputs": prompt, "parameters": params}
        async with event_stream(model.endpoint + "/generate_stream", body, model) as events:
            async for event in events:
                if not event.data.strip():
                    continue
                try:
                    data = json.loads(event.data)
                    token_text = (data.get("token") or {}).get("text", "")
                    special = (data.get("token") or {}).get("special", False)
                except (ValueError, AttributeError) as exc:
                    raise UpstreamError(
                        f"{upstream_for(model)} sent a malformed stream event.",
                        code="upstream_malformed",
                        detail=f"{model.endpoint}: {event.data[:200]!r}",
                    ) from exc
                if data.get("error"):
                    raise UpstreamError(
                        f"{upstream_for(model)} failed mid-stream. The response is "
                        "incomplete; retry it.",
                        code="upstream_stream_error",
                        detail=f"{model.endpoint}: {data['error']}",
                    )
                details = data.get("details")
                finish = _FINISH.get(str(details.get("finish_reason")), "stop") if details else None
                text = "" if special else token_text
                yield chunk(head, [delta_choice(chat, {"content": text}, finish)])
                if details:
                    usage = Usage(estimate_tokens(prompt), details.get("generated_tokens") or 0)
                    yield usage_chunk(head, usage.to_openai())
                    return
            raise stream_ended_early(upstream_for(model), model.endpoint)
