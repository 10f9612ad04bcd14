"""Cold start of a template function under the local Lambda emulator.

Each run starts a fresh runtime process (``python -m awslambdaric``) and invokes the
function once: RouterFunction with the HTTP API event for ``GET /healthz``, the
authorizer and the health probe with their sample events from ``infra/events/`` (the
probe against a registry whose one endpoint refuses at once, so the figure is not a
network's). Reported per run:

- init: process start to the runtime's first ``/next`` poll (imports plus everything the
  handler module builds at import: registry, store client, edge model sessions), what
  Lambda reports as Init Duration;
- first response: process start to the response posted back, what a caller waits for
  on a cold instance (minus Lambda's own sandbox start, which no local run has).

The store is SQLite in a temporary folder so the figure is the function's own cost,
not a network's. Usage: ``python -m bench.cold_start [--runs 10] [--function ID]
[--compare DIR]``; ``--compare`` also runs the function from another code folder (an
older commit's ``functions/``, exported), alternating run by run so both see the same
load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeroute.tools.invoke import code_dir, function_environment, layer_paths
from edgeroute.tools.localinvoke import LocalFunction, load_function

REPO = Path(__file__).resolve().parents[1]
HEALTHZ_EVENT: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "GET /healthz",
    "rawPath": "/healthz",
    "rawQueryString": "",
    "headers": {"host": "local", "user-agent": "bench"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "local",
        "domainName": "local",
        "http": {
            "method": "GET",
            "path": "/healthz",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "bench",
        },
        "requestId": "bench",
        "routeKey": "GET /healthz",
        "stage": "$default",
        "time": "22/Nov/2026:04:00:00 +0000",
        "timeEpoch": 1795320000000,
    },
    "isBase64Encoded": False,
}
EVENTS = REPO / "infra" / "events"
# Each function's event; RouterFunction's is HEALTHZ_EVENT.
EVENT_FILES = {
    "AuthorizerFunction": EVENTS / "rest-api-authorizer.json",
    "HealthProbeFunction": EVENTS / "schedule-health-probe.json",
}
FUNCTIONS = ("RouterFunction", *EVENT_FILES)


def measure(
    function: str,
    runs: int,
    build_dir: str | None,
    registry: str | None = None,
    compare: Path | None = None,
) -> list[dict[str, Any]]:
    """The function's figures, then ``compare``'s (the same function from that code
    folder) when given; the two alternate run by run."""
    template = REPO / "template.yaml"
    spec = load_function(template, function)
    assert spec.code_uri is not None
    code = code_dir(function, spec.code_uri, build_dir, template)
    layers = [code.parent / str(n) for n in spec.layers if str(n).isidentifier()]
    event_file = EVENT_FILES.get(function)
    event = json.loads(event_file.read_text()) if event_file else HEALTHZ_EVENT
    codes = [code] if compare is None else [code, compare]
    inits: dict[Path, list[float]] = {c: [] for c in codes}
    firsts: dict[Path, list[float]] = {c: [] for c in codes}
    with tempfile.TemporaryDirectory() as tmp:
        if registry is None and function == "HealthProbeFunction":
            registry = str(Path(tmp) / "models.yaml")
            Path(registry).write_text(
                "models:\n  - {name: m, endpoint: 'http://127.0.0.1:9/v1', tier: small}\n"
            )
        overrides = {
            "EDGEROUTE_STORE": "sqlite",
            "EDGEROUTE_SQLITE_PATH": str(Path(tmp) / "store.db"),
            "EDGEROUTE_REGISTRY": registry or str(REPO / "infra" / "models.yaml"),
            "EDGEROUTE_POLICY": str(REPO / "infra" / "routing.yaml"),
        }
        env = layer_paths(
            function_environment(spec.environment, os.environ, overrides),
            [d for d in layers if d.is_dir()],
        )
        for _, run_code in ((r, c) for r in range(runs) for c in codes):
            fn = LocalFunction(
                spec.handler,
                code_dirs=[run_code],
                env=env,
                timeout_s=spec.timeout_s,
                memory_mb=spec.memory_mb,
                init_timeout_s=30,
            )
            with fn:
                started = time.perf_counter()
                result = fn.invoke(event)
                first = (time.perf_counter() - started) * 1000
            if not result.ok or result.payload.get("statusCode", 200) != 200:
                raise RuntimeError(f"{function} failed: {result.payload}\n{result.logs[-2000:]}")
            inits[run_code].append(result.init_ms)
            firsts[run_code].append(first)
    return [
        {
            "function": function,
            "code": str(c),
            "runs": runs,
            "init_ms_median": round(statistics.median(inits[c]), 1),
            "first_response_ms_median": round(statistics.median(firsts[c]), 1),
            "init_ms_min": round(min(inits[c]), 1),
            "init_ms_max": round(max(inits[c]), 1),
            "python": sys.version.split()[0],
        }
        for c in codes
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--function", default="RouterFunction", choices=[*FUNCTIONS, "all"])
    parser.add_argument(
        "--build-dir", default=".aws-sam/build", help="sam build output (source tree if absent)"
    )
    parser.add_argument("--registry", help="registry file (default: infra/models.yaml)")
    parser.add_argument(
        "--compare", type=Path, help="another code folder to run alternately (before/after)"
    )
    args = parser.parse_args(argv)
    names = FUNCTIONS if args.function == "all" else (args.function,)
    results = [
        figures
        for name in names
        for figures in measure(name, args.runs, args.build_dir, args.registry, args.compare)
    ]
    print(json.dumps(results[0] if len(results) == 1 else results, indent=2))


if __name__ == "__main__":
    main()
