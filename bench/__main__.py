"""Run every benchmark: ``python -m bench [name ...]``."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tests.support import memory_attack

from bench import (
    batch_jobs,
    cold_start,
    config_reload,
    edge_models,
    gateway_overhead,
    header_caps,
    messages_overhead,
    pii,
    recovery,
    replicas,
    responses_overhead,
    routing,
    store_hot_path,
    token_bound,
)
from bench.compare import run as compare

BENCHMARKS: dict[str, Callable[[], object]] = {
    "compare": lambda: compare.main([]),  # rewrites its section of docs/benchmarks.md
    "gateway": gateway_overhead.main,
    "store": store_hot_path.main,
    "edge": edge_models.main,
    "routing": routing.main,
    "replicas": replicas.main,
    "pii": pii.main,
    "tokens": token_bound.main,
    "cold": lambda: cold_start.main(["--function", "all"]),
    "headers": header_caps.main,
    "memory": memory_attack.main,
    "recovery": recovery.main,
    "reload": config_reload.main,
    "responses": responses_overhead.main,
    "messages": messages_overhead.main,
    "batch": batch_jobs.main,
}


def main() -> int:
    if sys.argv[1:2] == ["compare"]:  # the one that takes options: --quick, --out
        return compare.main(sys.argv[2:])
    names = sys.argv[1:] or list(BENCHMARKS)
    for name in names:
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
