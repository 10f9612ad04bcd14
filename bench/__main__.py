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
    pii,
    recovery,
    replicas,
    routing,
    store_hot_path,
    token_bound,
)

BENCHMARKS: dict[str, Callable[[], None]] = {
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
    "batch": batch_jobs.main,
}


def main() -> int:
    names = sys.argv[1:] or list(BENCHMARKS)
    for name in names:
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
