"""Lambda entry point for buffered HTTP API requests: the FastAPI app behind Mangum.

The gateway (registry, store client) is built at import, during Lambda's init
phase, so SnapStart snapshots it and warm invocations reuse it. The edge models and the
upstream HTTP transport load then too when the init is snapshotted or provisioned ahead
of traffic; an on-demand init is a cold request's wait, so there they load with the
first request that needs them (a /healthz or key administration request never does).
"""

from __future__ import annotations

import os

from mangum import Mangum

from edgeroute.api.app import create_app
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings

# Lambda's own variable: on-demand, snap-start or provisioned-concurrency.
_ON_DEMAND = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "on-demand"
app = create_app(Gateway.from_settings(Settings.from_env(), warm=not _ON_DEMAND))
handler = Mangum(app, lifespan="off")
