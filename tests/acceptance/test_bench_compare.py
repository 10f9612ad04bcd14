"""The side-by-side benchmark's quick run, so the harness cannot rot: every system it
finds is started, measured and reported, and only its own section of the document is
rewritten. Without LiteLLM's venv (``make litellm-venv``) the rest is measured and the
report says LiteLLM was skipped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.compare import report, systems

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_the_quick_comparison_measures_every_system_and_keeps_the_other_sections(
    tmp_path: Path,
) -> None:
    doc = tmp_path / "benchmarks.md"
    original = (REPO / "docs" / "benchmarks.md").read_text()
    if report.BEGIN in original:  # the document as it would be without the section
        original = original.split(report.BEGIN)[0] + original.split(report.END)[1].lstrip("\n")
    doc.write_text(original)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "functions"), str(REPO)])}

    with_litellm = systems.LITELLM.is_file()  # before the run, which decides by it
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "compare", "--quick", "--out", str(doc)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    took = time.monotonic() - started

    assert done.returncode == 0, done.stderr[-4000:]
    text = doc.read_text()
    section = text.split(report.BEGIN)[1].split(report.END)[0]
    for name in ("direct", "floor", "edgeroute", "edgeroute-auto"):
        assert f"| {report.LABELS[name]} |" in section
    if with_litellm:
        assert f"| {report.LABELS['litellm']} |" in section
        assert "added p50 <= 1/10 of LiteLLM's" in section
    else:
        assert "Not measured in this run: LiteLLM" in section
        print("LiteLLM skipped: no .venv-litellm (make litellm-venv)")
    assert "| peak RSS <= 150 MiB, edge models loaded |" in section
    # The Lambda figures close the section: init, Mangum's warm overhead, sizes or why not.
    assert "| RouterFunction init under the emulator (target <= 500 ms" in section
    assert "| Mangum's warm overhead per invocation, wall / CPU |" in section
    assert "RouterFunction unzipped, with its layers" in section or "sam build" in section
    # The other sections are kept, in their order, and the section is written once.
    kept = [line for line in original.splitlines() if line.startswith("## ")]
    kept = [h for h in kept if "Side by side" not in h]
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert [h for h in headings if "Side by side" not in h] == kept
    assert text.count(report.BEGIN) == 1
    print(f"quick comparison took {took:.0f} s")
