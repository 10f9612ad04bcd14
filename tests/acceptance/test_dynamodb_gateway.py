"""The gateway on the DynamoDB store, through moto's server: quotas across processes,
the shared cache level, and the ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from edgeroute.store.dynamodb import shared_client
from edgeroute.store.tables import TableNames, create_tables
from tests.acceptance.test_quotas_cache_usage import _burst, _with_a_minute_ahead
from tests.support.fault_upstream import FaultUpstream
from tests.support.gateway import GatewayProcess
from tests.support.moto_server import AWS_ENV, MotoServer
from tests.support.openai_sdk import user_says

MESSAGES = user_says("Hello there")


@pytest.fixture(scope="module")
def dynamo_env(moto_server: MotoServer, registry_file: Path) -> dict[str, str]:
    names = TableNames.with_prefix(f"gw-{uuid.uuid4().hex[:6]}")
    with pytest.MonkeyPatch.context() as mp:
        for var, value in AWS_ENV.items():
            mp.setenv(var, value)
        create_tables(shared_client(moto_server.url, AWS_ENV["AWS_DEFAULT_REGION"]), names)
    return {
        **AWS_ENV,
        **names.as_env(),
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server.url,
        "EDGEROUTE_STORE": "dynamodb",
        "EDGEROUTE_REGISTRY": str(registry_file),
        "EDGEROUTE_KEY_CACHE_TTL": "1",
    }


@pytest.fixture(scope="module")
def two_gateways(dynamo_env: dict[str, str], workdir: Path) -> Iterator[list[GatewayProcess]]:
    first = GatewayProcess(dynamo_env, workdir).start()
    second = GatewayProcess(dynamo_env, workdir).start()
    try:
        yield [first, second]
    finally:
        first.stop()
        second.stop()


async def _split_burst(gateways: list[GatewayProcess], key: str) -> list[httpx.Response]:
    body = {"model": "instant", "messages": MESSAGES}
    halves = await asyncio.gather(
        *(_burst(g.url + "/v1/chat/completions", key, 100, body) for g in gateways)
    )
    return [r for half in halves for r in half]


def test_rpm_50_holds_across_two_processes(two_gateways: list[GatewayProcess]) -> None:
    _with_a_minute_ahead(15)
    key = str(two_gateways[0].create_key("dyn-burst", "--rpm", "50")["api_key"])
    responses = asyncio.run(_split_burst(two_gateways, key))
    statuses = [r.status_code for r in responses]
    odd = [r.text for r in responses if r.status_code not in (200, 429)]
    assert statuses.count(200) == 50, (Counter(statuses), odd[:3])
    # Every other request is refused. Under a loaded CI box moto's single-lock server has
    # (rarely: 1 of 200, in 2 of 3 fresh-clone runs) failed one store call; the gateway
    # then answers 503 store_unavailable with Retry-After and charges nothing, which the
    # exact 50 above proves. Anything else, or more than a few, fails the test.
    unavailable = [
        r
        for r in responses
        if r.status_code == 503
        and r.json()["error"]["code"] == "store_unavailable"
        and r.headers.get("retry-after") == "1"
    ]
    assert statuses.count(429) + len(unavailable) == 150, (Counter(statuses), odd[:3])
    assert len(unavailable) <= 3, (Counter(statuses), odd[:3])


def test_cache_is_shared_between_processes(
    two_gateways: list[GatewayProcess], fault_upstream: FaultUpstream
) -> None:
    key = str(two_gateways[0].create_key("dyn-cache")["api_key"])
    a, b = (openai.OpenAI(base_url=g.url + "/v1", api_key=key, max_retries=0) for g in two_gateways)
    prompt = user_says(f"shared cache {uuid.uuid4()}")
    before = fault_upstream.requests["instant"]
    miss = a.chat.completions.with_raw_response.create(model="instant", messages=prompt, seed=1)
    assert miss.headers["x-edgeroute-cache"] == "miss"
    deadline = 30
    while True:  # the shared level is filled just after the first answer is sent
        hit = b.chat.completions.with_raw_response.create(model="instant", messages=prompt, seed=1)
        if hit.headers["x-edgeroute-cache"] == "hit" or deadline == 0:
            break
        deadline -= 1
    assert hit.headers["x-edgeroute-cache"] == "hit"
    assert fault_upstream.requests["instant"] - before == 30 - deadline + 1


def test_chat_and_usage_on_dynamodb(two_gateways: list[GatewayProcess]) -> None:
    gateway = two_gateways[1]
    key = str(gateway.create_key("dyn-ledger", "--tenant", "dyn-tenant")["api_key"])
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    done = client.chat.completions.create(model="smollm2-135m", messages=MESSAGES, max_tokens=8)
    chunks = list(
        client.chat.completions.create(
            model="smollm2-135m",
            messages=MESSAGES,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert done.usage is not None and chunks[-1].usage is not None
    expected = done.usage.total_tokens + chunks[-1].usage.total_tokens
    for _ in range(40):
        report = httpx.get(
            gateway.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"}
        ).json()
        if report["total"] and report["total"]["requests"] == 2:
            break
        asyncio.run(asyncio.sleep(0.05))
    assert report["total"]["total_tokens"] == expected
