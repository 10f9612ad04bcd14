"""OpenTelemetry for ``edgeroute serve``: ``observe/tracing``'s spans as OpenTelemetry
spans, sent by OTLP over HTTP, only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

In tools/, which Lambda builds leave out: they trace with X-Ray and never carry the
OpenTelemetry SDK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from edgeroute.observe.tracing import Attribute, use


class OpenTelemetry:
    """OpenTelemetry spans from ``provider`` (default: a new one exporting by OTLP over
    HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``, as the SDK reads its variables)."""

    def __init__(self, provider: Any = None) -> None:
        if provider is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            service = os.environ.get("OTEL_SERVICE_NAME") or "edgeroute"
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.provider = provider
        self.tracer = provider.get_tracer("edgeroute")

    def span(self, name: str, attributes: Mapping[str, Attribute]) -> AbstractContextManager[Any]:
        started: AbstractContextManager[Any] = self.tracer.start_as_current_span(
            name, attributes=dict(attributes)
        )
        return started

    def shutdown(self) -> None:
        self.provider.shutdown()  # sends what is still buffered


def configure_serve() -> OpenTelemetry | None:
    """OpenTelemetry when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its traces-only form) is
    set; returned so ``serve`` can flush it at exit."""
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return None
    backend = OpenTelemetry()
    use(backend)
    return backend
