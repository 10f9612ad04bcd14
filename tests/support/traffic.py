"""A known mix of traffic through the gateway in process, for the dashboard's tests:
three tenants' keys, named and ``auto`` requests, a cache hit, a fallback after a failed
attempt, a quota refusal and an upstream error, all on the scripted upstream."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from edgeroute.edge.classifier import Classification
from edgeroute.errors import UpstreamUnavailable
from edgeroute.pipeline import execute
from edgeroute.pipeline.gateway import Gateway
from edgeroute.store.base import KeyLimits, Store
from edgeroute.store.keys import mint_key
from edgeroute.types import Usage
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import Answer, Fail, ScriptedUpstream, Status

REGISTRY = """
models:
  - {name: edge-chat, endpoint: 'http://edge:1/v1', tier: edge, retries: 0,
     price: {input_per_mtok: 0, output_per_mtok: 0}}
  - {name: small-a, endpoint: 'http://small-a:1/v1', tier: small, retries: 0,
     price: {input_per_mtok: 1, output_per_mtok: 2}}
  - {name: big-a, endpoint: 'http://big-a:1/v1', tier: large, retries: 0, fallbacks: [big-b],
     price: {input_per_mtok: 10, output_per_mtok: 30}}
  - {name: big-b, endpoint: 'http://big-b:1/v1', tier: large, retries: 0,
     price: {input_per_mtok: 12, output_per_mtok: 36}}
"""


@dataclass
class Traffic:
    gw: Gateway
    admin_secret: str
    user_secret: str  # a key that is not an admin's


async def known_mix(monkeypatch: pytest.MonkeyPatch, store: Store | None = None) -> Traffic:
    """Send the mix (on ``store``, default one in memory); returns the gateway (its
    ledger holds the lines) and two keys."""
    upstream = ScriptedUpstream()
    monkeypatch.setattr(execute, "adapter_for", lambda model: upstream)
    easy = Classification(task="chat", complexity=0.05, prompt_tokens=9, modality=("text",))
    monkeypatch.setattr("edgeroute.pipeline.run.classify", lambda payload: easy)
    gw = memory_gateway(REGISTRY, store=store)
    admin_secret, admin = mint_key("ops", tenant="ops", admin=True)
    await gw.store.put_key(admin)
    acme_secret, _ = await add_key(gw, tenant="acme")
    globex_secret, _ = await add_key(gw, tenant="globex", limits=KeyLimits(rpm=4))
    acme, globex = Client(gw, acme_secret), Client(gw, globex_secret)

    upstream.script("small-a", Answer(usage=Usage(prompt_tokens=100, completion_tokens=50)))
    for _ in range(3):
        assert (await acme.chat("small-a")).status_code == 200
    forced = {"x-edgeroute-cache": "force"}
    assert (await acme.chat("small-a", headers=forced, temperature=0)).status_code == 200
    hit = await acme.chat("small-a", headers=forced, temperature=0)
    assert hit.headers["x-edgeroute-cache"] == "hit"
    for _ in range(2):
        assert (await acme.chat("auto")).status_code == 200
    upstream.script("big-a", Fail(UpstreamUnavailable("down (scripted)")))
    upstream.script("big-b", Answer(), Status(500), Answer())
    assert (await globex.chat("big-a")).headers["x-edgeroute-model"] == "big-b"  # fallback
    assert (await globex.chat("big-b")).status_code == 502  # an upstream error
    assert (await globex.chat("big-b", stream=True)).status_code == 200
    assert (await globex.chat("small-a")).status_code == 200
    assert (await globex.chat("small-a")).status_code == 429  # its fifth this minute
    return Traffic(gw, admin_secret, acme_secret)
