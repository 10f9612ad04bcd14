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


def test_the_template_s_alarms_and_dashboard_name_only_metrics_edgeroute_emits() -> None:
    import re

    template = (DOC.parents[1] / "template.yaml").read_text()
    named = set(re.findall(r'MetricName=\\"(\w+)\\"', template))
    named |= set(re.findall(r'"\$\{MetricsNamespace\}", "(\w+)"', template))
    named |= set(re.findall(r"Namespace: !Ref MetricsNamespace, MetricName: (\w+)", template))
    named |= set(re.findall(r"Namespace: !Ref MetricsNamespace\n\s+MetricName: (\w+)", template))
    emitted = {m.name for m in ALL}
    assert named - emitted == set()
    assert {"Anomalies", "QuotaRefusals", "TimeToFirstTokenMs", "EdgeInferenceMs"} <= named
