"""Lambda entry point for the REST API's buffered routes: the FastAPI app behind Mangum.

The gateway (registry, store client) is built at import, during Lambda's init
phase, so SnapStart snapshots it and warm invocations reuse it. ``POST /v1/batches``
starts a job through the resume queue, which the batch function reads. The edge models and the
upstream HTTP transport load then too when the init is snapshotted or provisioned ahead
of traffic; an on-demand init is a cold request's wait, so there they load with the
first request that needs them (a /healthz or key administration request never does).

The cyclic garbage collector is off while this module loads: init allocates objects
that live as long as the process (FastAPI's and pydantic's models, the routes), so
collections during it only cost time (~0.09 s of CPU of ~0.75 s, Python 3.12). They are
then frozen out of later collections, and the collector is turned back on.
"""

from __future__ import annotations

import gc
import os

gc.disable()

from mangum import Mangum  # noqa: E402

from edgeroute.api.app import create_app  # noqa: E402
from edgeroute.batch.dispatch import QueueDispatch  # noqa: E402
from edgeroute.observe import logs, tracing  # noqa: E402
from edgeroute.pipeline.gateway import Gateway  # noqa: E402
from edgeroute.settings import Settings  # noqa: E402

logs.configure()  # JSON logs; the request id and API Gateway's per request (api/audit)
tracing.configure_lambda()  # X-Ray subsegments, unless POWERTOOLS_TRACE_DISABLED
# Lambda's own variable: on-demand, snap-start or provisioned-concurrency.
_ON_DEMAND = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "on-demand"
_settings = Settings.from_env()
app = create_app(Gateway.from_settings(_settings, warm=not _ON_DEMAND))
if _settings.batch.resume_queue_url:
    app.state.batch_dispatch = QueueDispatch(_settings.batch.resume_queue_url)
handler = Mangum(app, lifespan="off")
gc.freeze()
gc.enable()
