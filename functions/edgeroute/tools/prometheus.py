"""``GET /metrics`` for ``edgeroute serve``: every metric of ``observe/names.py`` as a
Prometheus counter or histogram in a registry of its own, served as exposition text.

In tools/, which Lambda builds leave out: they never carry ``prometheus_client`` (EMF
serves CloudWatch instead). The page holds no per-key label, so it is served without a
key, as Prometheus scrapes it.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from edgeroute.observe import metrics
from edgeroute.observe.names import ALL, Metric

# Milliseconds: from a cache hit to a long generation.
BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class PrometheusSink:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._series: dict[Metric, Counter | Histogram] = {}
        for metric in ALL:
            # prometheus_client adds the _total suffix to counters itself.
            name = metric.prometheus_name.removesuffix("_total")
            if metric.kind == "counter":
                series: Counter | Histogram = Counter(
                    name, metric.help, metric.labels, registry=self.registry
                )
            else:
                series = Histogram(
                    name, metric.help, metric.labels, registry=self.registry, buckets=BUCKETS_MS
                )
            self._series[metric] = series

    def observe(self, labels: Mapping[str, str], values: Mapping[Metric, float]) -> None:
        for metric, value in values.items():
            series = self._series[metric]
            if metric.labels:
                series = series.labels(*(labels.get(n) or "none" for n in metric.labels))
            if isinstance(series, Counter):
                series.inc(max(value, 0.0))
            else:
                series.observe(max(value, 0.0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def install(app: FastAPI) -> PrometheusSink:
    """Send every metric to a new Prometheus sink too, and serve it on ``GET /metrics``."""
    sink = PrometheusSink()
    metrics.install(sink)
    app.state.prometheus = sink

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(sink.exposition(), media_type=CONTENT_TYPE)

    return sink
