"""/v1/moderations: answered at the edge by the moderation model, in a worker thread,
with the same key checks, quota admission and ledger as every other request.

Invariant: once admitted, the call is settled exactly once, however it ends: the
reservation is given back and the ledger gets one line. A batch job's lines (``GROUP_EDGE``)
in flight together are scored in one inference, each still admitted and settled alone."""

from __future__ import annotations

import asyncio

import anyio

from edgeroute.errors import EdgerouteError, NotFound, PermissionDenied
from edgeroute.pipeline.admit import admit
from edgeroute.pipeline.call import Call
from edgeroute.pipeline.gateway import Gateway
from edgeroute.pipeline.resolve import Plan, within_cost_ceiling
from edgeroute.pipeline.settle import settle
from edgeroute.types import Capability, Json, Kind, Usage
from edgeroute.upstreams.grouping import GROUP_EDGE, Grouper
from edgeroute.wire.tokens import estimate_tokens

Results = list[dict[str, object]]


def moderate_groups(requests: list[list[str]]) -> list[Results | Exception]:
    """Each request's results, all their texts scored in one inference (blocking)."""
    from edgeroute.edge.moderation import moderate as moderate_texts

    scored = moderate_texts([text for texts in requests for text in texts])
    answers: list[Results | Exception] = []
    start = 0
    for texts in requests:
        answers.append(scored[start : start + len(texts)])
        start += len(texts)
    return answers


_grouper: Grouper[list[str], Results] = Grouper(moderate_groups)


async def moderate(gw: Gateway, call: Call) -> Json:
    """/v1/moderations at the edge: the named (or first) moderation model, in a thread."""
    # Imported here: onnxruntime and the model load only for instances that moderate.
    from edgeroute.edge.moderation import moderate as moderate_texts

    name = call.payload.get("model")
    able = [m for m in gw.registry.models() if m.supports(Capability.MODERATION)]
    model = gw.registry.get(name) if isinstance(name, str) else (able[0] if able else None)
    if model is None or not model.supports(Capability.MODERATION):
        names = ", ".join(m.name for m in able) or "none is configured"
        raise NotFound(
            f"'{name}' is not a moderation model. Moderation models: {names}.",
            param="model",
        )
    if not call.principal.allows(model.name):
        raise PermissionDenied(f"This API key may not use model '{model.name}'.", param="model")
    raw = call.payload["input"]
    texts = [raw] if isinstance(raw, str) else list(raw)
    tokens = sum(estimate_tokens(t) for t in texts)
    if call.max_cost_usd is not None:
        priced = Plan([model], "moderation model", prompt_tokens=tokens, reserve_tokens=tokens)
        within_cost_ceiling(priced, Kind.MODERATIONS, call.payload, call.max_cost_usd)
    call.admission = await admit(gw.store, call.principal, Kind.MODERATIONS, model, {}, tokens)
    try:
        if GROUP_EDGE.get():
            results = await _grouper.run(texts)
        else:
            results = await asyncio.to_thread(moderate_texts, texts)
    except BaseException as exc:
        status = exc.status_code if isinstance(exc, EdgerouteError) else 500
        with anyio.CancelScope(shield=True):  # give back the reservation, however it ended
            await settle(gw, call, model, Usage(), status, 1)
        raise
    await settle(gw, call, model, Usage(tokens, 0), 200, 1)
    return {
        "id": f"modr-{call.request_id.removeprefix('req_')}",
        "model": model.name,
        "results": results,
    }
