"""``python -m bench compare [--quick] [--out PATH]``: start the systems, measure them in
alternating rounds, stop them (reading their peak memory) and rewrite the side-by-side
section of docs/benchmarks.md. ``--quick`` (about 2 minutes) is what ``make test`` runs
so the harness cannot rot; without LiteLLM's venv the rest is still measured and the
report says LiteLLM was skipped. The Lambda figures (bench/lambda_figures.py) close
the section."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from bench import lambda_figures
from bench.compare import report, systems
from bench.compare.measure import FULL, QUICK, measure

DOC = systems.REPO / "docs" / "benchmarks.md"
AUTO = {"EDGEROUTE_CLASSIFY": "auto"}


def _pinning(proxy: set[int], rest: set[int]) -> str:
    if proxy == rest:
        return "one core: nothing pinned"
    return (
        f"each proxy pinned to core {min(proxy)}, the client and the upstream to core(s) "
        f"{', '.join(map(str, sorted(rest)))}, with os.sched_setaffinity before exec "
        "(as taskset does)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench compare")
    parser.add_argument("--quick", action="store_true", help="2 short rounds (~2 minutes)")
    parser.add_argument("--out", type=Path, default=DOC, help="the Markdown file to rewrite")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    proxy_cpus, client_cpus = systems.cores()
    workdir = Path(tempfile.mkdtemp(prefix="edgeroute-compare-"))
    upstream, upstream_url = systems.start_upstream(client_cpus, workdir)
    starts: list[Callable[[], systems.System]] = [
        lambda: systems.floor(upstream_url, proxy_cpus, workdir),
        lambda: systems.edgeroute("edgeroute", upstream_url, proxy_cpus, workdir, {}),
        lambda: systems.edgeroute("edgeroute-auto", upstream_url, proxy_cpus, workdir, AUTO),
    ]
    if not args.quick:  # the old default, beside the new one: what moving it bought
        always = {"EDGEROUTE_CLASSIFY": "always"}
        starts.append(
            lambda: systems.edgeroute("edgeroute-always", upstream_url, proxy_cpus, workdir, always)
        )
    skipped: list[str] = []
    if systems.LITELLM.is_file():
        starts.append(lambda: systems.litellm(upstream_url, proxy_cpus, workdir))
    else:
        skipped.append(f"LiteLLM (no {systems.LITELLM.relative_to(systems.REPO)})")
    started = [systems.System("direct", upstream_url + "/chat/completions")]
    try:
        with ThreadPoolExecutor(len(starts)) as pool:  # side by side: about a minute
            futures = [pool.submit(start) for start in starts]
        started += [f.result() for f in futures if f.exception() is None]
        for future in futures:
            future.result()  # raises the first failure; what did start is stopped below
        figures = measure(started, plan, client_cpus)
    finally:
        rss = {s.name: s.stop() for s in started}
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(10)
    for name, mib in rss.items():
        figures[name].rss_mib = mib
    lambda_part = lambda_figures.lines(lambda_figures.measure(quick=args.quick))
    text = report.section(figures, plan, _pinning(proxy_cpus, client_cpus), skipped, lambda_part)
    report.write(args.out, text)
    print(json.dumps({n: asdict(f) for n, f in figures.items()}, indent=1))
    print(text, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
