"""Lambda figures for the side-by-side report: RouterFunction's init under the local
emulator (bench/cold_start.py), the warm overhead of Mangum against calling the ASGI app
directly, and each function's unzipped size with its layers (tests/packaging/sizes.py).

Warm overhead: one process, one app (handlers/api.py's, built at import as on Lambda),
the same ``GET /healthz`` request in both forms, alternating, many rounds: through
``handler(event, context)`` (API Gateway's HTTP API event in, Lambda's response dict
out) and straight to ``app(scope, receive, send)`` on the same event loop. Reported:
median wall time and CPU time per request of each, and their difference. Sizes need a
``sam build`` (``.aws-sam/build``); without one the report says so rather than building
(minutes).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.packaging.sizes import REPO, function_size
from tests.packaging.test_template import FUNCTIONS

from bench import cold_start

BUILD = REPO / ".aws-sam" / "build"


@dataclass
class LambdaFigures:
    init_ms: float | None = None  # RouterFunction, median over runs
    init_runs: int = 0
    mangum_ms: float = 0.0  # wall per request, median over batches
    asgi_ms: float = 0.0
    mangum_cpu_ms: float = 0.0
    asgi_cpu_ms: float = 0.0
    requests: int = 0
    sizes_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _asgi_request(app: Any) -> Callable[[], Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"local"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 0),
        "server": ("local", 443),
    }

    async def call() -> int:
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope), receive, send)
        return status

    return call


def warm_overhead(figures: LambdaFigures, batches: int, per_batch: int) -> None:
    """Mangum against the bare ASGI app, alternating batch by batch in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            {
                "EDGEROUTE_STORE": "sqlite",
                "EDGEROUTE_SQLITE_PATH": str(Path(tmp) / "store.db"),
                "EDGEROUTE_REGISTRY": str(REPO / "infra" / "models.yaml"),
                "EDGEROUTE_POLICY": str(REPO / "infra" / "routing.yaml"),
                "POWERTOOLS_TRACE_DISABLED": "true",
                "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            }
        )
        api = importlib.import_module("edgeroute.handlers.api")
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # Mangum runs each invocation on this loop
        call = _asgi_request(api.app)
        event = cold_start.HEALTHZ_EVENT

        def via_mangum() -> None:
            assert api.handler(copy.deepcopy(event), None)["statusCode"] == 200

        def direct() -> None:
            assert loop.run_until_complete(call()) == 200

        samples: dict[str, tuple[list[float], list[float]]] = {
            "mangum": ([], []),
            "asgi": ([], []),
        }
        for batch in range(batches + 1):
            for name, run in (("mangum", via_mangum), ("asgi", direct)):
                wall0, cpu0 = time.perf_counter(), time.process_time()
                for _ in range(per_batch):
                    run()
                if batch:  # the first batch warms both paths
                    samples[name][0].append((time.perf_counter() - wall0) * 1000 / per_batch)
                    samples[name][1].append((time.process_time() - cpu0) * 1000 / per_batch)
        loop.close()
    figures.mangum_ms = statistics.median(samples["mangum"][0])
    figures.asgi_ms = statistics.median(samples["asgi"][0])
    figures.mangum_cpu_ms = statistics.median(samples["mangum"][1])
    figures.asgi_cpu_ms = statistics.median(samples["asgi"][1])
    figures.requests = batches * per_batch


def measure(*, quick: bool) -> LambdaFigures:
    figures = LambdaFigures()
    runs = 3 if quick else 10
    try:
        init = cold_start.measure("RouterFunction", runs, str(BUILD))[0]
        figures.init_ms, figures.init_runs = init["init_ms_median"], runs
        if not BUILD.is_dir():
            figures.notes.append("init from the source tree (no `.aws-sam/build`)")
    except Exception as error:  # the report says what failed; the rest is still measured
        figures.notes.append(f"init not measured: {error}")
    if BUILD.is_dir():
        figures.sizes_mb = {n: function_size(n, BUILD) / 1e6 for n in FUNCTIONS}
    else:
        figures.notes.append("sizes need `sam build` (`.aws-sam/build` is absent)")
    warm_overhead(figures, batches=10 if quick else 30, per_batch=100 if quick else 300)
    return figures


def lines(f: LambdaFigures) -> list[str]:
    """The report's Lambda part, in Markdown."""
    init = f"{f.init_ms:.0f} ms (median of {f.init_runs})" if f.init_ms is not None else "-"
    met = "met" if f.init_ms is not None and f.init_ms <= 500 else "**not met**"
    out = [
        "### Lambda",
        "",
        "| figure | value |",
        "|---|---|",
        f"| RouterFunction init under the emulator (target <= 500 ms: {met}) | {init} |",
        f"| warm `GET /healthz` through Mangum, wall / CPU | {f.mangum_ms:.3f} / "
        f"{f.mangum_cpu_ms:.3f} ms |",
        f"| the same straight to the ASGI app, wall / CPU | {f.asgi_ms:.3f} / "
        f"{f.asgi_cpu_ms:.3f} ms |",
        f"| Mangum's warm overhead per invocation, wall / CPU | "
        f"{f.mangum_ms - f.asgi_ms:.3f} / {f.mangum_cpu_ms - f.asgi_cpu_ms:.3f} ms |",
    ]
    out += [f"| {n} unzipped, with its layers | {mb:.1f} MB |" for n, mb in f.sizes_mb.items()]
    out += [
        "",
        f"Init: `bench/cold_start.py` (process start to the runtime's first poll). Overhead: "
        f"{f.requests} requests each way, alternating in batches in one process "
        "(`bench/lambda_figures.py`). Sizes: `tests/packaging/sizes.py` over `.aws-sam/build`.",
    ]
    if f.notes:
        out += ["", "Not measured or measured otherwise: " + "; ".join(f.notes) + "."]
    return out


if __name__ == "__main__":
    print("\n".join(lines(measure(quick=True))))
