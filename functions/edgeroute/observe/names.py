"""Every metric edgeroute emits, with its labels: the one list both sinks read.

Invariant: a label's values come from a small, fixed set (tiers, registry model names,
HTTP statuses, cache results, configuration variables, anomaly kinds); never a key id,
tenant or request id. Per-key and per-tenant figures come from the usage ledger (the
dashboard, ``edgeroute usage``), where they cost nothing per series. EMF (CloudWatch)
names are ``name``; Prometheus names are derived by ``prometheus_name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "histogram"]


@dataclass(frozen=True)
class Metric:
    name: str  # as CloudWatch shows it (EMF)
    kind: Kind
    unit: Literal["Count", "Milliseconds", "None"]
    labels: tuple[str, ...]
    help: str

    @property
    def prometheus_name(self) -> str:
        """``TimeToFirstTokenMs`` -> ``edgeroute_time_to_first_token_ms`` (+ ``_total``
        for counters, as Prometheus names them)."""
        snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", self.name)
        base = "edgeroute_" + snake.lower()
        return base + "_total" if self.kind == "counter" else base


_MODEL = ("tier", "model")

REQUESTS = Metric(
    "Requests",
    "counter",
    "Count",
    ("tier", "model", "status", "cache"),
    "Requests answered, by tier, model, HTTP status and cache result (hit, miss, bypass).",
)
TOKENS_IN = Metric("TokensIn", "counter", "Count", _MODEL, "Prompt tokens billed.")
TOKENS_OUT = Metric("TokensOut", "counter", "Count", _MODEL, "Completion tokens billed.")
COST = Metric("CostUSD", "counter", "None", _MODEL, "Cost of the answers, in US dollars.")
LATENCY = Metric(
    "LatencyMs",
    "histogram",
    "Milliseconds",
    _MODEL,
    "Time from the request's arrival to its settlement, in milliseconds.",
)
CACHE_HIT = Metric(
    "CacheHit",
    "counter",
    "Count",
    _MODEL,
    "Answers served from the response cache (on EMF 0 or 1 per request: its average is "
    "the hit rate).",
)
SERVER_ERRORS = Metric(
    "ServerErrors", "counter", "Count", _MODEL, "Requests answered with a 5xx status."
)
FALLBACKS = Metric(
    "Fallbacks",
    "counter",
    "Count",
    _MODEL,
    "Requests answered after at least one failed attempt (a retry or a fallback).",
)
DEGRADED = Metric(
    "Degraded",
    "counter",
    "Count",
    _MODEL,
    "Answers from a model below the tier the request asked for.",
)
QUOTA_REFUSALS = Metric(
    "QuotaRefusals",
    "counter",
    "Count",
    ("limit",),
    "Requests refused by a key's limits (402 budget, 429 rate or concurrency), by error code.",
)
EDGE_INFERENCE = Metric(
    "EdgeInferenceMs",
    "histogram",
    "Milliseconds",
    (),
    "Time the edge classifier (encoder and heads) took for one request.",
)
UPSTREAM_LATENCY = Metric(
    "UpstreamLatencyMs",
    "histogram",
    "Milliseconds",
    ("model",),
    "A buffered upstream attempt's time to its whole answer.",
)
TIME_TO_FIRST_TOKEN = Metric(
    "TimeToFirstTokenMs",
    "histogram",
    "Milliseconds",
    ("model",),
    "A streamed upstream attempt's time to its first chunk.",
)
UPSTREAM_ERRORS = Metric(
    "UpstreamErrors",
    "counter",
    "Count",
    ("model",),
    "Upstream attempts that failed (before any fallback answered).",
)
UPSTREAM_AUTH_FAILURES = Metric(
    "UpstreamAuthFailures",
    "counter",
    "Count",
    ("model",),
    "Upstream attempts refused for edgeroute's credential, or whose secret could not be read.",
)
CIRCUITS_OPENED = Metric(
    "CircuitsOpened",
    "counter",
    "Count",
    ("model",),
    "Circuits opened: a model's endpoint taken out of routing after repeated failures.",
)
CONFIG_REFUSED = Metric(
    "ConfigRefused",
    "counter",
    "Count",
    ("config",),
    "A changed registry or policy file was not valid; the old one keeps serving.",
)
CONFIG_FALLBACK = Metric(
    "ConfigFallback",
    "counter",
    "Count",
    ("config",),
    "At start the s3:// registry or policy was unusable; the bundled default serves.",
)
ANOMALIES = Metric(
    "Anomalies",
    "counter",
    "Count",
    ("kind",),
    "Usage anomalies found in the ledger (calls or spend far above a key's or tenant's "
    "own baseline, repeated identical failures), by kind.",
)
CLASSIFICATIONS_SHED = Metric(
    "ClassificationsShed",
    "counter",
    "Count",
    (),
    "Named-model requests whose classification after the answer was dropped (its queue "
    "full or its share of the core spent); their ledger lines have no task.",
)

ALL: tuple[Metric, ...] = (
    REQUESTS, TOKENS_IN, TOKENS_OUT, COST, LATENCY, CACHE_HIT, SERVER_ERRORS, FALLBACKS,
    DEGRADED, QUOTA_REFUSALS, EDGE_INFERENCE, UPSTREAM_LATENCY, TIME_TO_FIRST_TOKEN,
    UPSTREAM_ERRORS, UPSTREAM_AUTH_FAILURES, CIRCUITS_OPENED, CONFIG_REFUSED,
    CONFIG_FALLBACK, ANOMALIES, CLASSIFICATIONS_SHED,
)  # fmt: skip

# Label names no metric may carry: each value would be a series of its own.
FORBIDDEN_LABELS = frozenset({"key", "key_id", "tenant", "request_id", "user"})
