"""Live configuration on the hot path: what ``Gateway.check_config`` costs a request
when no check is due (every request but one per ``EDGEROUTE_CONFIG_RELOAD_S``), what a
due check costs its worker thread when the file did not change (one ``stat``), and what
a scheduled policy rule adds to a routing decision."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _per_call_ns(fn: Callable[[], object], calls: int) -> float:
    """The median over 5 runs of ``calls`` calls, in ns per call."""
    runs = []
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(runs)


def main() -> None:
    from edgeroute.config.policy import parse_policy
    from edgeroute.config.watch import registry_file
    from edgeroute.pipeline.gateway import Gateway
    from edgeroute.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            registry=str(REPO / "infra" / "models.yaml"),
            sqlite_path=str(Path(folder) / "edgeroute.db"),
            usage_spool="",
            classify="auto",
        )
        gw = Gateway.from_settings(settings)
        not_due_ns = _per_call_ns(gw.check_config, 200_000)
        watched = registry_file(settings.registry)
        watched.read()
        unchanged_us = _per_call_ns(watched.reread, 2_000) / 1000
    rule = parse_policy(
        'rules: [{name: r, when: {schedule: {days: [mon, tue], hours: "22:00-06:00", '
        "timezone: Asia/Shanghai}}, tier: large}]",
        "bench",
    ).rules[0]
    schedule = rule.when.schedule
    assert schedule is not None
    now = time.time()
    covers_us = _per_call_ns(lambda: schedule.covers(now), 100_000) / 1000
    print(
        json.dumps(
            {
                "check_config_not_due_ns": round(not_due_ns, 1),
                "reread_unchanged_local_file_us": round(unchanged_us, 1),
                "schedule_covers_us": round(covers_us, 2),
            },
            indent=2,
        )
    )
