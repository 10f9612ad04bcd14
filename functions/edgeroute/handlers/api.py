"""Lambda entry point for the REST API's buffered routes: the FastAPI app behind Mangum.

The gateway (registry, store client) is built at import, during Lambda's init
phase, so SnapStart snapshots it and warm invocations reuse it.
"""

from __future__ import annotations

from mangum import Mangum

from edgeroute.api.app import create_app
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings

app = create_app(Gateway.from_settings(Settings.from_env()))
handler = Mangum(app, lifespan="off")
