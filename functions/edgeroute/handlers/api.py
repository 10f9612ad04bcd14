"""Lambda entry point for buffered HTTP API requests: the FastAPI app behind Mangum.

The gateway (registry, store client) is built at import, during Lambda's init
phase, so SnapStart snapshots it and warm invocations reuse it.
"""

from __future__ import annotations

from mangum import Mangum

from edgeroute.api.app import create_app
from edgeroute.observe import logs, tracing
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings

logs.configure()  # JSON logs; the request id and API Gateway's per request (api/audit)
tracing.configure_lambda()  # X-Ray subsegments, unless POWERTOOLS_TRACE_DISABLED
app = create_app(Gateway.from_settings(Settings.from_env()))
handler = Mangum(app, lifespan="off")
