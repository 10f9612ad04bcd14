"""PII recognizers: precision and recall per class on the labelled set and on the set
written after the recognizers were frozen, and scan time for a megabyte of text."""

from __future__ import annotations

import time


def main() -> None:
    from edgeroute.privacy.recognizers import find
    from edgeroute.tools.eval_pii import DEFAULT_SET, HELDOUT_SET, evaluate, render

    for name, path in (("labelled", DEFAULT_SET), ("held out", HELDOUT_SET)):
        print(f"PII recognizers, {name} set ({path.name}):")
        print(render(evaluate(path)))
    prose = "Contact jane.doe@example.com or (415) 555-2671 about order 2291. " * 16_000
    for label, text in (("prose with PII", prose), ("1 MB of 'a'", "a" * 1_000_000)):
        started = time.perf_counter()
        found = len(find(text))
        elapsed = time.perf_counter() - started
        print(f"scan {label} ({len(text) / 1e6:.2f} MB): {elapsed:.2f} s, {found} values")
