"""Guardrails: the edge moderation model on a request's text before it is forwarded, and
on a buffered answer before it is returned, as the key's policy asks
(``KeyPolicy.guardrail``; unset: the operator's ``EDGEROUTE_GUARDRAIL_DEFAULT``).

``input`` screens chat and completions requests; ``both`` also screens their buffered
answers. Streams are screened on input only: their tokens reach the caller as they come.
Embeddings and moderations are not screened.

Invariant: with a guardrail on, a flagged text is refused with a 400
(``content_policy_violation``) naming the categories, and ``call.guardrail`` records the
outcome ("passed" / "refused: cat1,cat2") for the audit record. The model runs on a worker
thread and reads a bounded part of any text (``edge.moderation.windows``); a failure
refuses the request (a 500), never lets it through unscreened.
"""

from __future__ import annotations

import asyncio

from edgeroute.edge.classifier import request_text
from edgeroute.errors import ContentPolicyViolation
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.gateway import Gateway
from edgeroute.types import Json, Kind

SCREENED = (Kind.CHAT, Kind.COMPLETIONS)


def stage(gw: Gateway, call: Call) -> str:
    """The guardrail stage for this call's key: off, input or both."""
    return call.principal.policy.guardrail or gw.settings.guardrail_default


def answer_text(body: Json) -> str:
    """The text of every choice of a buffered chat or completions answer."""
    parts: list[str] = []
    for choice in body.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else choice.get("text")
        if isinstance(content, str):
            parts.append(content)
    return "\n".join(parts)


async def _flagged(text: str) -> list[str]:
    if not text.strip():
        return []
    from edgeroute.edge.moderation import screen  # onnxruntime loads only where it is used

    return await asyncio.to_thread(screen, text)


async def screen_input(gw: Gateway, call: Call) -> None:
    """Refuse a request whose text is flagged, before anything is forwarded."""
    if call.kind not in SCREENED or stage(gw, call) == "off":
        return
    flagged = await _flagged(request_text(call.payload)[1])
    call.guardrail = f"refused: {','.join(flagged)}" if flagged else "passed"
    if flagged:
        field = "messages" if call.kind is Kind.CHAT else "prompt"
        raise ContentPolicyViolation(
            f"This API key's guardrail refused the request: its text was flagged for "
            f"{', '.join(flagged)}. Rephrase '{field}', or ask the key's administrator "
            "about its guardrail policy.",
            param=field,
        )


async def screen_output(gw: Gateway, call: Call, body: Json) -> None:
    """Withhold a buffered answer whose text is flagged (stage ``both``)."""
    if call.kind not in SCREENED or stage(gw, call) != "both":
        return
    flagged = await _flagged(answer_text(body))
    call.guardrail = f"refused: {','.join(flagged)}" if flagged else "passed"
    if flagged:
        raise ContentPolicyViolation(
            f"This API key's guardrail refused the model's answer: it was flagged for "
            f"{', '.join(flagged)}. Rephrase the request, or ask the key's administrator "
            "about its guardrail policy."
        )
