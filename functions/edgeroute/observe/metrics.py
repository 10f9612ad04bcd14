"""Where metrics go: every observation goes to each installed sink.

EMF (CloudWatch Embedded Metric Format, via Powertools) is always installed and prints
only on Lambda (or with ``POWERTOOLS_METRICS_DISABLED=false``); ``edgeroute serve`` adds
the Prometheus sink (``tools/prometheus.py``), so Lambda code never imports
``prometheus_client``. One observation is one EMF line: its metrics share its labels,
each label a dimension set of its own beside ``[service]``, so CloudWatch aggregates by
tier, by model, by status... without a series per combination.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from edgeroute.observe.names import FORBIDDEN_LABELS, Metric

DEFAULT_NAMESPACE = "edgeroute"
DEFAULT_SERVICE = "edgeroute"


class Sink(Protocol):
    def observe(self, labels: Mapping[str, str], values: Mapping[Metric, float]) -> None:
        """Record ``values``, each under the labels its metric declares."""


def emf_enabled() -> bool:
    """Whether the EMF sink prints anything. Cheap: two environment look-ups."""
    if is_metrics_disabled():
        return False
    on_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    explicitly_on = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "false"
    return on_lambda or explicitly_on


class EmfSink:
    """One EMF line per observation, printed to stdout (Lambda ships it to CloudWatch
    Logs, which turns it into metrics with no API call on the request path)."""

    def observe(self, labels: Mapping[str, str], values: Mapping[Metric, float]) -> None:
        if not emf_enabled():
            return
        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
        service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
        # EphemeralMetrics shares no state between instances, so concurrent requests in
        # one process (the batch runner, the stream server) never mix their metrics.
        metrics = EphemeralMetrics(namespace=namespace, service=service)
        metrics.set_default_dimensions(service=service)  # in every set added after
        for label, shown in labels.items():
            metrics.add_dimensions(**{label: shown or "none"})
        for metric, value in values.items():
            metrics.add_metric(metric.name, MetricUnit(metric.unit), max(float(value), 0.0))
        metrics.flush_metrics()


_sinks: list[Sink] = [EmfSink()]


def install(sink: Sink) -> None:
    """Send every later observation to ``sink`` too (``edgeroute serve``'s Prometheus)."""
    if sink not in _sinks:
        _sinks.append(sink)


def uninstall(sink: Sink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def observe(labels: Mapping[str, str], values: Mapping[Metric, float]) -> None:
    """Record one observation in every sink. ``labels`` must hold every label of every
    metric in ``values`` and no per-key label (``observe/names.py``)."""
    assert not FORBIDDEN_LABELS & labels.keys(), f"per-key label in {sorted(labels)}"
    for sink in _sinks:
        sink.observe(labels, values)
