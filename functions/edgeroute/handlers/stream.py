#!/usr/bin/env python3
"""The streaming entry point: the same ASGI app, served by uvicorn under the Lambda Web
Adapter, which the REST API invokes with InvokeWithResponseStream for the routes that may
stream (Python has no native Lambda response streaming; the adapter relays the app's SSE
bytes as they come, and a buffered answer in one piece).

Lambda runs this file itself: the adapter's ``/opt/bootstrap`` wrapper executes
``$LAMBDA_TASK_ROOT/$_HANDLER``, and the template's Handler is this path, so it must
stay executable. Locally, ``uvicorn edgeroute.handlers.stream:app`` serves the same app.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Run as a script, sys.path[0] is this folder; Lambda's code and layer folders come
    # first instead, as the Python runtime would put them for an ordinary handler.
    here = os.path.dirname(os.path.abspath(__file__))
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.path.dirname(os.path.dirname(here))
    sys.path[:1] = [task_root, "/opt/python"]

from edgeroute.api.app import create_app
from edgeroute.observe import logs, tracing
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings

logs.configure()  # JSON logs; the request id and API Gateway's per request (api/audit)
tracing.configure_lambda()  # X-Ray subsegments, unless POWERTOOLS_TRACE_DISABLED
app = create_app(Gateway.from_settings(Settings.from_env()))


def main() -> None:
    import uvicorn

    # One worker: Lambda sends one request per instance at a time; the adapter waits
    # on PORT (and READINESS_CHECK_PATH) before it takes the first event.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ.get("PORT", "8080")),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        access_log=False,
        log_config=None,  # uvicorn's lines through the JSON handler too
        lifespan="on",
    )


if __name__ == "__main__":
    main()
