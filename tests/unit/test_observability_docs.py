"""docs/observability.md lists every metric under both of its names, with its labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.observe.names import ALL, Metric

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


@pytest.mark.parametrize("metric", ALL, ids=lambda m: m.name)
def test_every_metric_is_documented_with_its_labels(metric: Metric) -> None:
    rows = [line for line in DOC.read_text().splitlines() if f"| `{metric.name}` |" in line]
    assert rows, f"add {metric.name} to the metrics table of {DOC.name}"
    assert f"`{metric.prometheus_name}`" in rows[0]
    assert f"| {', '.join(metric.labels) or '—'} |" in rows[0]
