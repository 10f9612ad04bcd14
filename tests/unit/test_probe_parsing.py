"""Reading what a health probe fetched: Prometheus text and an endpoint's server root."""

from __future__ import annotations

from edgeroute.health.probe import parse_prometheus, server_root
from tests.support.prometheus import VLLM_METRICS


def test_prometheus_text_is_summed_over_labels() -> None:
    values = parse_prometheus(VLLM_METRICS + 'bad{x="1" 2\nnan_metric NaN\nnot a number\n')
    assert values == {
        "vllm:num_requests_waiting": 5.0,
        "vllm:num_requests_running": 7.0,
        "tgi_queue_size": 11.0,
    }


def test_server_root_drops_the_openai_suffix() -> None:
    assert server_root("http://h:8000/v1") == "http://h:8000"
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("http://h:3000") == "http://h:3000"
