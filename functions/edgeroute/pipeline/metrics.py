"""What the pipeline reports as metrics: one function per event, each an observation
of the metrics ``observe/names.py`` lists, sent to every sink (``observe/metrics.py``:
EMF on Lambda, Prometheus in ``edgeroute serve``).

One EMF line per request, with a dimension set per label beside ``[service]`` (totals:
p99 latency, cache hit rate), so CloudWatch aggregates it by tier (edge vs GPU share),
by model (cost by model), by status and by cache result from a single log line.
Counters that say whether something happened (CacheHit, ServerErrors, Fallbacks,
Degraded) are 0 or 1 per request, so their EMF average is the rate.

Off the Lambda runtime EMF prints nothing (EMF on a developer's terminal is noise)
unless ``POWERTOOLS_METRICS_DISABLED=false`` is set explicitly; on Lambda
``POWERTOOLS_METRICS_DISABLED=true`` turns it off, as for any Powertools metric.
"""

from __future__ import annotations

from edgeroute.observe import names
from edgeroute.observe.metrics import observe
from edgeroute.store.base import UsageRecord


def record_request(record: UsageRecord, cache: str) -> None:
    """One finished request (its ledger line, and its cache result: hit, miss or
    bypass): count, tokens, cost, latency, and whether it was served from the cache,
    failed on our side or upstream (status >= 500), needed a second attempt, or came
    from below the tier asked for."""
    labels = {
        "tier": record.tier or "none",
        "model": record.model or "none",
        "status": str(record.status),
        "cache": cache,
    }
    observe(
        labels,
        {
            names.REQUESTS: 1,
            names.TOKENS_IN: record.prompt_tokens,
            names.TOKENS_OUT: record.completion_tokens,
            names.COST: record.cost_usd_micros / 1e6,
            names.LATENCY: record.latency_ms,
            names.CACHE_HIT: 1 if record.cache_hit else 0,
            names.SERVER_ERRORS: 1 if record.status >= 500 else 0,
            names.FALLBACKS: 1 if record.attempts > 1 and record.status < 400 else 0,
            names.DEGRADED: 1 if record.degraded else 0,
        },
    )


def quota_refused(code: str) -> None:
    """A key's limit refused a request (402 or 429); ``code`` is the error's code."""
    observe({"limit": code}, {names.QUOTA_REFUSALS: 1})


def edge_inference(ms: float) -> None:
    """The edge classifier's time for one request."""
    observe({}, {names.EDGE_INFERENCE: ms})


def upstream_answered(model: str, ms: float, *, streamed: bool) -> None:
    """An upstream attempt's time to its whole answer, or to a stream's first chunk."""
    metric = names.TIME_TO_FIRST_TOKEN if streamed else names.UPSTREAM_LATENCY
    observe({"model": model or "none"}, {metric: ms})


def upstream_error(model: str) -> None:
    """An upstream attempt failed (before any fallback answered): alarms watch this."""
    observe({"model": model or "none"}, {names.UPSTREAM_ERRORS: 1})


def upstream_auth_failure(model: str) -> None:
    """An upstream refused edgeroute's credential, or it could not be read: this does not
    heal on its own, so alarms page on any."""
    observe({"model": model or "none"}, {names.UPSTREAM_AUTH_FAILURES: 1})


def circuit_opened(model: str) -> None:
    """A model's endpoint left routing after repeated failures."""
    observe({"model": model or "none"}, {names.CIRCUITS_OPENED: 1})


def anomalies(kind: str, found: int) -> None:
    """How many usage anomalies of ``kind`` the scheduled check found (0 included)."""
    observe({"kind": kind}, {names.ANOMALIES: found})


def config_refused(variable: str) -> None:
    """A changed registry or policy file was not valid and the old one keeps serving:
    alarms watch this, since requests keep working and nobody else would notice.
    ``variable`` names the file's setting (``EDGEROUTE_REGISTRY``)."""
    observe({"config": variable}, {names.CONFIG_REFUSED: 1})


def config_fallback(variable: str) -> None:
    """At start, the ``s3://`` registry or policy was missing or not valid and the
    bundled default serves instead: alarms watch this, since requests keep working
    (with the default's models) and nobody else would notice."""
    observe({"config": variable}, {names.CONFIG_FALLBACK: 1})


def classification_shed() -> None:
    """A named-model request's deferred classification was dropped (queue full or its
    time share spent): its ledger line has no task. Many mean the classifier is over
    its share of the core, which is what shedding is for."""
    observe({}, {names.CLASSIFICATIONS_SHED: 1})
