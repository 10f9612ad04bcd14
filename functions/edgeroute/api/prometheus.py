"""``GET /metrics`` in Prometheus's text format, for ``edgeroute serve`` only.

``install`` adds the Prometheus sink (``observe/prometheus.py``) to the metric sinks and
the route to the app; Lambda's handlers never call it, so their builds need no
``prometheus_client`` (CloudWatch gets the same metrics as EMF). The page holds no
per-key label (``observe/names.py``), so it is served without a key, as Prometheus
scrapes it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from edgeroute.observe import metrics


def install(app: FastAPI) -> None:
    from edgeroute.observe.prometheus import CONTENT_TYPE, PrometheusSink

    sink = PrometheusSink()
    metrics.install(sink)
    app.state.prometheus = sink

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(sink.exposition(), media_type=CONTENT_TYPE)
