"""Request metrics as CloudWatch Embedded Metric Format (EMF) lines, via Powertools.

One EMF line per request, with three dimension sets so CloudWatch aggregates it
three ways from a single log line: ``[service]`` (totals: p99 latency, cache hit
rate), ``[service, tier]`` (edge vs GPU share) and ``[service, model]`` (cost by
model). Lambda ships stdout to CloudWatch Logs, which turns the lines into metrics
with no API call on the request path.

Off the Lambda runtime nothing is printed (EMF on a developer's terminal is noise)
unless ``POWERTOOLS_METRICS_DISABLED=false`` is set explicitly; on Lambda
``POWERTOOLS_METRICS_DISABLED=true`` turns it off, as for any Powertools metric.
"""

from __future__ import annotations

import os

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

DEFAULT_NAMESPACE = "edgeroute"
DEFAULT_SERVICE = "edgeroute"


def enabled() -> bool:
    """Whether a call here prints anything. Cheap: two environment look-ups."""
    if is_metrics_disabled():
        return False
    on_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    explicitly_on = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "false"
    return on_lambda or explicitly_on


def _metrics() -> EphemeralMetrics:
    # EphemeralMetrics keeps no state shared between instances, so concurrent requests
    # in one process (the batch runner, the stream server) never mix their metrics.
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
    metrics = EphemeralMetrics(namespace=namespace, service=service)
    # Default dimensions go into every dimension set added after them.
    metrics.set_default_dimensions(service=service)
    return metrics


def record_request(
    model: str,
    tier: str,
    cost_usd: float,
    latency_ms: float,
    cache_hit: bool,
    status: int,
) -> None:
    """One finished request: count, cost, latency, cache hit (0/1, so its average is
    the hit rate) and whether it failed on our side or upstream (status >= 500)."""
    if not enabled():
        return
    metrics = _metrics()
    metrics.add_dimensions(tier=tier or "none")
    metrics.add_dimensions(model=model or "none")
    metrics.add_metric("Requests", MetricUnit.Count, 1)
    metrics.add_metric("CostUSD", MetricUnit.NoUnit, max(cost_usd, 0.0))
    metrics.add_metric("LatencyMs", MetricUnit.Milliseconds, max(latency_ms, 0.0))
    metrics.add_metric("CacheHit", MetricUnit.Count, 1 if cache_hit else 0)
    metrics.add_metric("ServerErrors", MetricUnit.Count, 1 if status >= 500 else 0)
    metrics.flush_metrics()


def upstream_error(model: str) -> None:
    """An upstream attempt failed (before any fallback answered): alarms watch this."""
    _count_for_model("UpstreamErrors", model)


def upstream_auth_failure(model: str) -> None:
    """An upstream refused edgeroute's credential, or it could not be read: this does not
    heal on its own, so alarms page on any."""
    _count_for_model("UpstreamAuthFailures", model)


def _count_for_model(name: str, model: str) -> None:
    if not enabled():
        return
    metrics = _metrics()
    metrics.add_dimensions(model=model or "none")
    metrics.add_metric(name, MetricUnit.Count, 1)
    metrics.flush_metrics()


def config_refused(variable: str) -> None:
    """A changed registry or policy file was not valid and the old one keeps serving:
    alarms watch this, since requests keep working and nobody else would notice.
    ``variable`` names the file's setting (``EDGEROUTE_REGISTRY``)."""
    _count_for_config("ConfigRefused", variable)


def config_fallback(variable: str) -> None:
    """At start, the ``s3://`` registry or policy was missing or not valid and the
    bundled default serves instead: alarms watch this, since requests keep working
    (with the default's models) and nobody else would notice."""
    _count_for_config("ConfigFallback", variable)


def _count_for_config(name: str, variable: str) -> None:
    if not enabled():
        return
    metrics = _metrics()
    metrics.add_dimensions(config=variable)
    metrics.add_metric(name, MetricUnit.Count, 1)
    metrics.flush_metrics()


def classification_shed() -> None:
    """A named-model request's deferred classification was dropped (queue full or its
    time share spent): its ledger line has no task. Many mean the classifier is over
    its share of the core, which is what shedding is for."""
    if not enabled():
        return
    metrics = _metrics()
    metrics.add_metric("ClassificationsShed", MetricUnit.Count, 1)
    metrics.flush_metrics()
