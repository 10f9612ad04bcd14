"""The app's middleware stack: each layer is a walk every request pays for, so no two
layers do the same walk (the body's size limit and its JSON reading share one walk of
the headers), and the audit middleware walks the routes only when a span names them."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import BaseRoute

from edgeroute.api.app import create_app
from edgeroute.api.audit import RequestAudit
from edgeroute.api.memory import MemoryCeiling
from edgeroute.api.middleware import RequestBodies
from tests.support.inprocess import memory_gateway


def _layers(app: Any) -> list[type]:
    layers = []
    while hasattr(app, "app"):
        layers.append(type(app))
        app = app.app
    return layers


def test_the_body_rules_are_one_layer_between_the_audit_and_the_app() -> None:
    app = create_app(memory_gateway("models: []\n"))
    layers = _layers(app.build_middleware_stack())
    ours = [layer for layer in layers if layer.__module__.startswith("edgeroute.")]
    assert ours[:3] == [MemoryCeiling, RequestAudit, RequestBodies]
    assert [layer for layer in ours if layer.__module__ == RequestBodies.__module__] == [
        RequestBodies
    ]


async def test_without_tracing_the_audit_middleware_does_not_walk_the_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walked: list[str] = []

    class Route(BaseRoute):
        def matches(self, scope: Any) -> Any:
            walked.append(scope["path"])
            raise AssertionError("the routes were walked")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["state"]["call"] = type("Audited", (), {"audited": True})()
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Any) -> None:
        pass

    audit = RequestAudit(app, routes=[Route()], trusted_proxies=0)
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    await audit(scope, None, send)  # type: ignore[arg-type]
    assert walked == []
