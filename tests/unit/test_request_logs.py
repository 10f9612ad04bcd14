"""One request's log lines are JSON (Powertools' formatter) carrying the request's
fields, whichever module wrote them; concurrent requests never trade fields; the
correlation id comes from API Gateway's event or the S3 request that wrote a batch."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from edgeroute.errors import UpstreamUnavailable
from edgeroute.observe import logs
from edgeroute.store.base import ApiKey
from tests.support.inprocess import Client, add_key, memory_gateway
from tests.support.scripted_upstream import Fail, ScriptedUpstream

REGISTRY = """
models:
  - {name: mid-a, endpoint: 'http://mid-a:1/v1', tier: medium, retries: 0, fallbacks: [mid-b]}
  - {name: mid-b, endpoint: 'http://mid-b:1/v1', tier: medium, retries: 0}
"""


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """JSON logging as ``edgeroute serve`` (and Lambda) configure it, into a buffer."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "edgeroute-test")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    out = io.StringIO()
    handler = logs.configure(force=True, stream=out)
    assert handler is not None
    try:
        yield out
    finally:
        logs.unconfigure(handler)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


async def _first_attempt_fails(upstream: ScriptedUpstream) -> tuple[Client, ApiKey]:
    """A client of tenant acme whose calls to mid-a fail once, then fall back."""
    gw = memory_gateway(REGISTRY)
    secret, key = await add_key(gw, tenant="acme")
    upstream.script("mid-a", Fail(UpstreamUnavailable("down (scripted)")))
    return Client(gw, secret), key


async def test_a_failed_attempt_is_logged_with_the_request_fields(
    printed: io.StringIO, upstream: ScriptedUpstream
) -> None:
    client, key = await _first_attempt_fails(upstream)

    answer = await client.chat("mid-a")

    assert answer.status_code == 200
    line = next(x for x in _lines(printed) if "attempt 1 on mid-a failed" in x["message"])
    assert line["level"] == "WARNING" and line["service"] == "edgeroute-test"
    assert line["request_id"] == answer.headers["x-request-id"]
    assert line["tenant"] == "acme" and line["key_id"] == key.key_id
    assert line["model"] == "mid-a" and line["tier"] == "medium"
    assert line["route_reason"] == "model named in the request"
    assert "correlation_id" not in line  # no API Gateway in front of this one
    assert client.secret not in printed.getvalue()


async def test_the_function_url_request_id_is_the_correlation_id(
    printed: io.StringIO, upstream: ScriptedUpstream
) -> None:
    client, _ = await _first_attempt_fails(upstream)
    context = json.dumps({"requestId": "apigw-42", "stage": "$default"})

    answer = await client.chat("mid-a", headers={"x-amzn-request-context": context})

    line = next(x for x in _lines(printed) if "on mid-a failed" in x["message"])
    assert line["correlation_id"] == "apigw-42"
    assert line["request_id"] == answer.headers["x-request-id"]


async def test_concurrent_requests_keep_their_own_fields(printed: io.StringIO) -> None:
    log = logging.getLogger("edgeroute.test")

    async def request(n: int) -> None:
        logs.begin(request_id=f"req_{n}")
        await asyncio.sleep(0.01 * (3 - n))
        logs.bind(tenant=f"t{n}")
        await asyncio.to_thread(log.info, "from a worker thread %d", n)

    await asyncio.gather(*(request(n) for n in range(3)))
    lines = _lines(printed)
    assert sorted((x["request_id"], x["tenant"], x["message"][-1]) for x in lines) == [
        (f"req_{n}", f"t{n}", str(n)) for n in range(3)
    ]


def test_the_level_comes_from_powertools_log_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "ERROR")
    out = io.StringIO()
    handler = logs.configure(force=True, stream=out)
    assert handler is not None
    try:
        logging.getLogger("edgeroute.x").warning("not shown")
        logging.getLogger("edgeroute.x").error("shown")
    finally:
        logs.unconfigure(handler)
        logging.getLogger(logs.ROOT).setLevel(logging.NOTSET)
    assert [x["message"] for x in _lines(out)] == ["shown"]


def test_off_lambda_only_serve_configures_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert logs.configure() is None


def test_correlation_ids_from_api_gateway_and_s3_events() -> None:
    assert logs.correlation_id({"requestContext": {"requestId": "abc-123"}}) == "abc-123"
    s3 = {"Records": [{"s3": {}, "responseElements": {"x-amz-request-id": "S3REQ"}}]}
    assert logs.correlation_id(s3) == "S3REQ"
    assert logs.correlation_id({"Records": [{}]}) == logs.correlation_id(None) == ""
