"""The gateway inside the test process: a ``Gateway`` on an in-memory SQLite store, its
HTTP app called through ASGI (no server, no socket), and readers for what the store
holds afterwards (quota counters, ledger lines) through the store's own methods.

Named-model calls skip the edge classifier (``classify="auto"``), so no ONNX model
is loaded; upstream calls go wherever ``execute.adapter_for`` points (the scripted
upstream in unit tests).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import MutableMapping
from typing import Any

import httpx

from edgeroute.api.app import create_app
from edgeroute.config.policy import Policy
from edgeroute.config.registry import parse_registry
from edgeroute.health.circuits import HealthView
from edgeroute.pipeline.admit import limits_for
from edgeroute.pipeline.authenticate import Authenticator
from edgeroute.pipeline.cache import ResponseCache
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings
from edgeroute.store.base import ApiKey, KeyLimits, Store, UsageRecord
from edgeroute.store.keys import mint_key
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.types import Json

CHAT = "/v1/chat/completions"


def memory_gateway(
    registry_yaml: str, *, policy: Policy | None = None, store: Store | None = None
) -> Gateway:
    """A gateway as ``Gateway.from_settings`` builds one, on ``store`` (default: a new
    in-memory SQLite store) with the registry given as YAML text."""
    settings = Settings(registry="<memory>", sqlite_path=":memory:", classify="auto")
    store = store or SQLiteStore(":memory:")
    policy = policy or Policy()
    return Gateway(
        settings=settings,
        registry=parse_registry(registry_yaml, "models.yaml"),
        store=store,
        authenticator=Authenticator(store, settings.key_cache_ttl_s),
        cache=ResponseCache(store, ttl_s=settings.cache_ttl_s, max_bytes=settings.cache_max_bytes),
        policy=policy,
        health=HealthView(store, policy.health_ttl_s),
    )


async def add_key(
    gw: Gateway,
    *,
    limits: KeyLimits | None = None,
    models: tuple[str, ...] = (),
    tenant: str | None = None,
) -> tuple[str, ApiKey]:
    """Mint a key into the gateway's store: (secret, record)."""
    secret, record = mint_key("unit", limits=limits, models=models, tenant=tenant)
    await gw.store.put_key(record)
    return secret, record


def chat_body(model: str, **extra: Any) -> Json:
    return {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}


class Client:
    """Calls the gateway's HTTP app in process, as one API key."""

    def __init__(self, gw: Gateway, secret: str) -> None:
        self.gw = gw
        self.app = create_app(gw)
        self.secret = secret

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secret}", **(extra or {})}

    async def post(
        self, path: str, body: Json, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """The whole response; a buffered answer's background settlement has run."""
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post(path, json=body, headers=self._headers(headers))

    async def chat(
        self, model: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> httpx.Response:
        return await self.post(CHAT, chat_body(model, **extra), headers)

    async def hang_up_after(
        self, events: int, body: Json, path: str = CHAT
    ) -> tuple[dict[str, str], list[bytes]]:
        """Stream ``body`` and disconnect once ``events`` body parts arrived, as uvicorn
        tells the app (ASGI ``http.disconnect``); returns the headers and the parts."""
        raw = json.dumps(body).encode()
        headers = {**self._headers(None), "content-type": "application/json"}
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},  # uvicorn's
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "server": ("gateway", 80),
            "client": ("127.0.0.1", 123),
        }
        answered: dict[str, str] = {}
        received: list[bytes] = []
        enough = asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await enough.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered.update((k.decode(), v.decode()) for k, v in message["headers"])
            if message["type"] == "http.response.body" and message.get("body"):
                received.append(message["body"])
                if len(received) >= events:
                    enough.set()

        await self.app(scope, receive, send)
        return answered, received


def sse_events(body: bytes | str) -> list[Any]:
    """The data of each server-sent event: parsed JSON, or the text ``[DONE]``."""
    text = body.decode() if isinstance(body, bytes) else body
    out: list[Any] = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def counters(gw: Gateway, key: ApiKey, since: float) -> dict[str, int]:
    """Each of the key's quota counters, summed over the windows from ``since`` to now
    (a test that crosses a minute boundary still sees all it reserved)."""
    out: dict[str, int] = {}
    windows = {item.kind: {item.window_start} for item in limits_for(key, 0, 0, since)}
    latest = {item.kind: item for item in limits_for(key, 0, 0, time.time())}
    for kind, starts in windows.items():
        item = latest[kind]
        out[kind] = 0
        for start in starts | {item.window_start}:
            out[kind] += await gw.store.get_counter(item.counter(key.key_id), start)
    return out


async def ledger(gw: Gateway, since: float = 0.0) -> list[UsageRecord]:
    """Every usage record written since ``since``, oldest first."""
    return await gw.store.query_usage(since, time.time() + 1)
