"""A trace of one request shows where it spent its time: the request's span with the
classification, the store round and each upstream attempt under it, named as on X-Ray
(``observe/tracing.SPANS``), read from OpenTelemetry's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from edgeroute.edge.classifier import Classification
from edgeroute.errors import UpstreamUnavailable
from edgeroute.observe import tracing
from edgeroute.tools import otel
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import Fail, ScriptedUpstream

REGISTRY = """
models:
  - {name: mid-a, endpoint: 'http://mid-a:1/v1', tier: medium, retries: 0, fallbacks: [mid-b]}
  - {name: mid-b, endpoint: 'http://mid-b:1/v1', tier: medium, retries: 0}
"""


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(otel.OpenTelemetry(provider))
    c = Classification(task="chat", complexity=0.2, prompt_tokens=5, modality=("text",))
    monkeypatch.setattr("edgeroute.pipeline.run.classify", lambda payload: c)
    try:
        yield exporter
    finally:
        tracing.use(None)


async def test_one_request_has_the_expected_spans(
    exported: InMemorySpanExporter, upstream: ScriptedUpstream
) -> None:
    gw = memory_gateway(REGISTRY)
    gw = replace(gw, settings=gw.settings.model_copy(update={"classify": "always"}))
    secret, _ = await add_key(gw, tenant="acme")
    upstream.script("mid-a", Fail(UpstreamUnavailable("down (scripted)")))

    answer = await Client(gw, secret).chat("mid-a")

    assert answer.status_code == 200
    spans = exported.get_finished_spans()
    assert sorted(s.name for s in spans) == sorted(
        [tracing.REQUEST, tracing.STORE, tracing.CLASSIFY, tracing.UPSTREAM, tracing.UPSTREAM]
    )
    (root,) = [s for s in spans if s.name == tracing.REQUEST]
    assert root.parent is None and root.attributes is not None
    assert root.attributes["request_id"] == answer.headers["x-request-id"]
    assert root.attributes["endpoint"] == "/v1/chat/completions"
    assert root.context is not None
    for child in (s for s in spans if s is not root):
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context is not None and child.context.trace_id == root.context.trace_id
    attempts = sorted(
        (s for s in spans if s.name == tracing.UPSTREAM),
        key=lambda s: str((s.attributes or {})["attempt"]),
    )
    assert [(s.attributes or {})["model"] for s in attempts] == ["mid-a", "mid-b"]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.UNSET]
    for inner in (s for s in spans if s is not root):
        assert root.start_time is not None and inner.start_time is not None
        assert root.end_time is not None and inner.end_time is not None
        assert root.start_time <= inner.start_time <= inner.end_time <= root.end_time


async def test_a_stream_attempt_is_a_span_to_its_first_chunk(
    exported: InMemorySpanExporter, upstream: ScriptedUpstream
) -> None:
    gw = memory_gateway(REGISTRY)
    secret, _ = await add_key(gw)

    answer = await Client(gw, secret).chat("mid-b", stream=True)

    assert answer.status_code == 200
    (attempt,) = [s for s in exported.get_finished_spans() if s.name == tracing.UPSTREAM]
    assert attempt.attributes == {"model": "mid-b", "attempt": 1, "stream": True}


def test_without_a_backend_a_span_does_nothing() -> None:
    with tracing.span(tracing.STORE, model="m") as opened:
        assert opened is None


def test_serve_traces_only_when_an_otlp_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert otel.configure_serve() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    backend = otel.configure_serve()
    try:
        assert isinstance(backend, otel.OpenTelemetry)
    finally:
        tracing.use(None)
        assert backend is not None
        backend.provider.shutdown()


def test_lambda_traces_with_xray_unless_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    class XRay:  # Powertools' Tracer would patch botocore for the rest of the session
        pass

    monkeypatch.setattr(tracing, "XRay", XRay)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "edgeroute-test")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    tracing.configure_lambda()
    assert not isinstance(tracing.backend(), XRay)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
    try:
        tracing.configure_lambda()
        assert isinstance(tracing.backend(), XRay)
    finally:
        tracing.use(None)
