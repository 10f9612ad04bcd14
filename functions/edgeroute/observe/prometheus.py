"""The Prometheus sink: every metric of ``observe/names.py`` as a counter or histogram in
a registry of its own, and the exposition text ``GET /metrics`` serves.

Imported only by ``edgeroute serve`` (``api/prometheus.py``): Lambda builds do not carry
``prometheus_client``, and EMF serves them instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
