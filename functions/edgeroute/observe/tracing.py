"""Spans around the steps where a request spends its time, with one of two backends.

The pipeline opens spans by name (``span("edgeroute.upstream", model=...)``) and never
sees a backend: on Lambda, X-Ray subsegments through Powertools Tracer (off with
``POWERTOOLS_TRACE_DISABLED``, and wherever the function has no active tracing); in
``edgeroute serve``, OpenTelemetry spans sent by OTLP over HTTP, only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (``tools/otel.py``, left out of Lambda builds);
otherwise nothing (a span then costs one
attribute look-up). The names are the same in both, listed in ``SPANS``.

Invariant: attributes are the fixed, non-secret facts of a step (model, tier, attempt,
outcome, request id), never a key, prompt or answer. A span ends however the step ends;
an exception marks it failed and goes on unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol, cast

Attribute = str | int | float | bool

REQUEST = "edgeroute.request"  # one HTTP request, from the first byte in to the last out
CLASSIFY = "edgeroute.classify"  # the edge classifier (encoder and heads)
STORE = "edgeroute.store"  # the one store round: admission and the cache look-up
UPSTREAM = "edgeroute.upstream"  # one attempt at one replica, to its answer or first chunk
SPANS = (REQUEST, CLASSIFY, STORE, UPSTREAM)


class Backend(Protocol):
    def span(self, name: str, attributes: Mapping[str, Attribute]) -> AbstractContextManager[Any]:
        """A span named ``name``, the current one's child, ended on exit."""


class _Off:
    def span(self, name: str, attributes: Mapping[str, Attribute]) -> AbstractContextManager[Any]:
        return nullcontext()


class XRay:
    """X-Ray subsegments through Powertools Tracer; botocore calls (DynamoDB, S3,
    Secrets Manager) get subsegments of their own."""

    def __init__(self) -> None:
        from aws_lambda_powertools import Tracer

        self.tracer = Tracer(patch_modules=("botocore",))

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Attribute]) -> Iterator[None]:
        if "_X_AMZN_TRACE_ID" not in os.environ:  # no invocation to attach to (LWA, an emulator)
            yield
            return
        with self.tracer.provider.in_subsegment(name=name) as subsegment:
            for key, value in attributes.items():
                # X-Ray's stubs say numbers.Number, which mypy does not match int to.
                subsegment.put_annotation(key=key.replace(".", "_"), value=cast(Any, value))
            yield


_backend: Backend = _Off()


def span(name: str, **attributes: Attribute) -> AbstractContextManager[Any]:
    """A span in whatever backend is in use (none: nothing happens)."""
    return _backend.span(name, attributes)


def enabled() -> bool:
    """Whether spans go anywhere: their attributes need computing only then."""
    return not isinstance(_backend, _Off)


def use(backend: Backend | None) -> None:
    """Send spans to ``backend`` from now on (``None``: nowhere)."""
    global _backend
    _backend = backend if backend is not None else _Off()


def backend() -> Backend:
    """The backend spans go to now."""
    return _backend


def configure_lambda() -> None:
    """X-Ray on Lambda unless ``POWERTOOLS_TRACE_DISABLED`` is true; nothing elsewhere."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
    if "AWS_LAMBDA_FUNCTION_NAME" in os.environ and not disabled:
        use(XRay())
