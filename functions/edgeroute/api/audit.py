"""Every HTTP request gets an id and exactly one audit record: the pipeline emits the
record of a call it settles or refuses; this middleware emits the rest (no key or a
bad key, a body that is not valid, routes that generate nothing, unknown routes).

Invariant: the record names the route by its template (``/v1/models/{model_id:path}``)
or ``unmatched``, never the raw path, which a caller may fill with anything, a key
included. ``/healthz`` (polled by load balancers and the Lambda Web Adapter) and ``/metrics``
(scraped by Prometheus) are not audited.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgeroute.api.routes import client_address
from edgeroute.observe import logs, tracing
from edgeroute.pipeline.audit import emit, request_record
from edgeroute.pipeline.call import new_request_id

UNAUDITED = frozenset({"/healthz", "/metrics"})  # polled by machines: not requests


def _correlation_id(scope: Scope) -> str:
    """API Gateway's request id: from the event Mangum hands over, or the header the
    Lambda Web Adapter adds for a Function URL's request."""
    found = logs.correlation_id(scope.get("aws.event"))
    if found:
        return found
    for name, value in scope.get("headers") or []:
        if name == b"x-amzn-request-context":
            try:
                return logs.correlation_id({"requestContext": json.loads(value)})
            except ValueError:
                return ""
    return ""


class RequestAudit:
    """Outermost middleware: gives the request its id, and audits it if nothing did."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute], trusted_proxies: int) -> None:
        self.app = app
        self.routes = routes
        self.trusted_proxies = trusted_proxies

    def _endpoint(self, scope: Scope) -> str:
        for route in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUDITED:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = new_request_id()
        logs.begin(request_id=state["request_id"], correlation_id=_correlation_id(scope))
        started = time.perf_counter()
        status = 500  # unless the app answers otherwise

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if tracing.enabled():  # the span names the route: walk the routes only then
                with tracing.span(
                    tracing.REQUEST, endpoint=self._endpoint(scope), request_id=state["request_id"]
                ):
                    await self.app(scope, receive, tracking_send)
            else:
                await self.app(scope, receive, tracking_send)
        finally:
            call = state.get("call")
            if call is None or not call.audited:
                address = state.get("client_address") or client_address(
                    Request(scope), self.trusted_proxies
                )
                emit(
                    request_record(
                        request_id=state["request_id"],
                        principal=state.get("principal"),
                        client_address=address,
                        endpoint=self._endpoint(scope),
                        status=status,
                        started=started,
                    )
                )
