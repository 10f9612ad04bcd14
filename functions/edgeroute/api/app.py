"""The FastAPI application: routes, error rendering, memory ceiling, body limit, lifecycle."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from edgeroute import __version__
from edgeroute.api import dashboard, openai_responses
from edgeroute.api.audit import RequestAudit
from edgeroute.api.batches import router as batches_router
from edgeroute.api.errors import install_error_handlers
from edgeroute.api.memory import MemoryCeiling, MemoryGauge, ceiling_mb
from edgeroute.api.messages import router as messages_router
from edgeroute.api.middleware import RequestBodies
from edgeroute.api.openapi import install_openapi
from edgeroute.api.routes import router
from edgeroute.observe import logs
from edgeroute.pipeline.autoroute import VIRTUAL
from edgeroute.pipeline.gateway import Gateway
from edgeroute.upstreams.http import close_shared_client


def create_app(gateway: Gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (modules, edge models) lives as long as the process:
        # frozen, a full collection no longer walks it (a pause of ~90 ms, every few
        # thousand requests, that set the p99).
        gc.freeze()
        if not logs.on_lambda():  # a frozen or reaped sandbox must not hold ledger lines
            gateway.after_answer.open()  # in tasks: this lifespan's end writes them all
        yield
        await gateway.deferred.close()  # waiting ledger lines go out unclassified
        await gateway.after_answer.close()  # every ledger line still being written
        await gateway.ledger.drain()  # a last try for records the store refused
        await close_shared_client()

    app = FastAPI(
        title="edgeroute",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gateway = gateway
    app.state.memory = MemoryGauge(ceiling_mb(gateway.settings))
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(openai_responses.router)
    app.include_router(messages_router)  # Anthropic's Messages API
    app.include_router(dashboard.router)  # GET /dashboard: spend, latency, routing
    app.include_router(batches_router)  # /v1/files, /v1/batches
    served = [n for m in gateway.registry.models() for n in (m.name, *m.aliases)]
    install_openapi(app, [*served, *VIRTUAL])
    app.add_middleware(RequestBodies, max_bytes=gateway.settings.max_body_bytes)
    app.add_middleware(
        RequestAudit,
        routes=[
            *router.routes,
            *openai_responses.router.routes,
            *messages_router.routes,
            *dashboard.router.routes,
        ],
        trusted_proxies=gateway.settings.trusted_proxies,
    )
    app.add_middleware(MemoryCeiling, gauge=app.state.memory)  # outermost: refuse first
    return app
