"""Lambda entry point for buffered HTTP API requests: the FastAPI app behind Mangum.

The gateway (registry, store client) is built at import, during Lambda's init
phase, so SnapStart snapshots it and warm invocations reuse it. ``POST /v1/batches``
starts a job through the resume queue, which the batch function reads.
"""

from __future__ import annotations

from mangum import Mangum

from edgeroute.api.app import create_app
from edgeroute.batch.dispatch import QueueDispatch
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings

_settings = Settings.from_env()
app = create_app(Gateway.from_settings(_settings))
if _settings.batch.resume_queue_url:
    app.state.batch_dispatch = QueueDispatch(_settings.batch.resume_queue_url)
handler = Mangum(app, lifespan="off")
