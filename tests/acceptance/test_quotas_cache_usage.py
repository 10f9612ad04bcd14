"""Quotas, the response cache and the usage ledger, end to end on the SQLite store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest

from tests.support.fault_upstream import FaultUpstream
from tests.support.gateway import GatewayProcess
from tests.support.openai_sdk import error_field, user_says

MESSAGES = user_says("What is the capital of France?")


def _key(gateway: GatewayProcess, name: str, *flags: str) -> str:
    return str(gateway.create_key(name, *flags)["api_key"])


async def _burst(url: str, key: str, count: int, body: dict[str, Any]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
                for _ in range(count)
            )
        )


def _with_a_minute_ahead(needed_s: float) -> None:
    """Wait for the next minute if this one has less than ``needed_s`` left: per-minute
    windows are aligned to the clock, and a test spanning two would see its count reset."""
    left = 60 - time.time() % 60
    if left < needed_s:
        time.sleep(left + 0.1)


def test_200_concurrent_requests_against_rpm_50_admit_exactly_50(
    gateway: GatewayProcess,
) -> None:
    _with_a_minute_ahead(15)
    key = _key(gateway, "burst", "--rpm", "50")
    body = {"model": "instant", "messages": MESSAGES}
    responses = asyncio.run(_burst(gateway.url + "/v1/chat/completions", key, 200, body))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50, statuses
    assert statuses.count(429) == 150
    refused = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "50"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and "50 requests per minute" in error["message"]


def test_rate_limit_headers_on_success(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    key = _key(gateway, "headers", "--rpm", "10", "--tpm", "100000")
    limited = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    response = limited.chat.completions.with_raw_response.create(
        model="instant",
        messages=MESSAGES,
        max_tokens=100,
    )
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    assert response.headers["x-ratelimit-remaining-requests"] == "9"
    assert response.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(response.headers["x-ratelimit-remaining-tokens"]) < 100000
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")


def test_token_quota_reserves_max_tokens(gateway: GatewayProcess) -> None:
    key = _key(gateway, "tokens", "--tpm", "100")
    limited = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        limited.chat.completions.create(model="instant", messages=MESSAGES, max_tokens=500)
    assert "max_tokens" in caught.value.message
    # A request that fits is admitted, and unused reservation is given back afterwards.
    for _ in range(3):
        limited.chat.completions.create(model="instant", messages=MESSAGES, max_tokens=10)


def test_budget_refuses_with_insufficient_quota(gateway: GatewayProcess) -> None:
    key = _key(gateway, "poor", "--budget-usd", "0.00001")
    limited = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        limited.chat.completions.create(
            model="instant",
            messages=user_says("x" * 400),
        )
    assert error_field(caught.value, "code") == "budget_exceeded"
    assert "monthly budget" in caught.value.message


def test_cache_hits_only_within_a_tenant(
    gateway: GatewayProcess, fault_upstream: FaultUpstream
) -> None:
    a = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=_key(gateway, "tenant-a"), max_retries=0
    )
    b = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=_key(gateway, "tenant-b"), max_retries=0
    )
    prompt = user_says("cache me, tenant-scoped")
    before = fault_upstream.requests["instant"]
    first = a.chat.completions.with_raw_response.create(
        model="instant", messages=prompt, temperature=0
    )
    again = a.chat.completions.with_raw_response.create(
        model="instant", messages=prompt, temperature=0
    )
    other = b.chat.completions.with_raw_response.create(
        model="instant", messages=prompt, temperature=0
    )
    assert first.headers["x-edgeroute-cache"] == "miss"
    assert again.headers["x-edgeroute-cache"] == "hit"
    assert other.headers["x-edgeroute-cache"] == "miss"
    assert fault_upstream.requests["instant"] == before + 2
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content


def test_cache_header_bypass_and_force(
    client: openai.OpenAI, fault_upstream: FaultUpstream
) -> None:
    prompt = user_says("creative, but forced into the cache")
    sampled = client.chat.completions.with_raw_response.create(
        model="instant",
        messages=prompt,
        temperature=0.9,
    )
    assert sampled.headers["x-edgeroute-cache"] == "bypass"
    force = {"x-edgeroute-cache": "force"}
    client.chat.completions.create(
        model="instant", messages=prompt, temperature=0.9, extra_headers=force
    )
    hit = client.chat.completions.with_raw_response.create(
        model="instant",
        messages=prompt,
        temperature=0.9,
        extra_headers=force,
    )
    assert hit.headers["x-edgeroute-cache"] == "hit"
    skipped = client.chat.completions.with_raw_response.create(
        model="instant",
        messages=prompt,
        temperature=0,
        extra_headers={"x-edgeroute-cache": "bypass"},
    )
    assert skipped.headers["x-edgeroute-cache"] == "bypass"
    with pytest.raises(openai.BadRequestError, match="x-edgeroute-cache"):
        client.chat.completions.create(
            model="instant",
            messages=prompt,
            extra_headers={"x-edgeroute-cache": "sometimes"},
        )


def test_streamed_answer_is_cached_and_replayed_identically(client: openai.OpenAI) -> None:
    kwargs: dict[str, Any] = dict(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "Name three fruits."}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    first = client.chat.completions.with_raw_response.create(**kwargs)
    first_chunks = list(first.parse())
    second = client.chat.completions.with_raw_response.create(**kwargs)
    second_chunks = list(second.parse())
    assert first.headers["x-edgeroute-cache"] == "miss"
    assert second.headers["x-edgeroute-cache"] == "hit"

    def contents(chunks: list[Any]) -> list[str | None]:
        return [c.choices[0].delta.content for c in chunks if c.choices]

    assert contents(second_chunks) == contents(first_chunks)
    assert second_chunks[-1].usage == first_chunks[-1].usage
    # A buffered request for the same thing is served the assembled completion.
    buffered = client.chat.completions.with_raw_response.create(
        **{k: v for k, v in kwargs.items() if k not in ("stream", "stream_options")}
    )
    assert buffered.headers["x-edgeroute-cache"] == "hit"
    assert buffered.parse().choices[0].message.content == "".join(
        c or "" for c in contents(first_chunks)
    )


def test_usage_totals_equal_what_the_upstream_reported(gateway: GatewayProcess) -> None:
    key = _key(gateway, "ledger", "--tenant", "ledger-tenant")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    prompt = 0
    completion = 0
    for i in range(2):
        done = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": f"Tell me fact number {i}."}],
            max_tokens=12,
            temperature=0.7,
        )
        assert done.usage is not None
        prompt += done.usage.prompt_tokens
        completion += done.usage.completion_tokens
    for i in range(2):
        chunks = list(
            client.chat.completions.create(
                model="smollm2-135m",
                messages=[{"role": "user", "content": f"Stream fact number {i}."}],
                max_tokens=12,
                temperature=0.7,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        usage = chunks[-1].usage
        assert usage is not None
        prompt += usage.prompt_tokens
        completion += usage.completion_tokens
    # A stream that did not ask for usage is still accounted from the upstream's report.
    list(
        client.chat.completions.create(
            model="instant",
            messages=MESSAGES,
            temperature=0.7,
            stream=True,
        )
    )
    prompt += 11  # what the instant upstream reports for every stream
    completion += 3
    # Buffered answers are accounted just after they are sent: allow a moment.
    deadline = time.monotonic() + 3
    while True:
        report = httpx.get(
            gateway.url + "/v1/usage",
            params={"group_by": "model"},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        if (report["total"] or {}).get("requests") == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert report["tenant"] == "ledger-tenant"
    assert report["total"]["prompt_tokens"] == prompt
    assert report["total"]["completion_tokens"] == completion
    assert report["total"]["requests"] == 5
    by_model = {row["model"]: row for row in report["data"]}
    assert by_model["smollm2-135m"]["requests"] == 4
    expected_cost = round((prompt - 11) * 1.0 + (completion - 3) * 2.0)  # micro-dollars
    assert abs(by_model["smollm2-135m"]["cost_usd_micros"] - expected_cost) <= 4


def test_usage_of_other_tenants_is_admin_only(gateway: GatewayProcess, api_key: str) -> None:
    response = httpx.get(
        gateway.url + "/v1/usage",
        params={"tenant": "ledger-tenant"},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 403
    admin = _key(gateway, "admin", "--admin")
    everyone = httpx.get(
        gateway.url + "/v1/usage",
        params={"group_by": "tenant"},
        headers={"Authorization": f"Bearer {admin}"},
    ).json()
    assert everyone["tenant"] == "all"
    assert len(everyone["data"]) >= 2
    bad = httpx.get(
        gateway.url + "/v1/usage",
        params={"start": "last tuesday"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "start"


def test_restart_keeps_counters_and_usage(gateway: GatewayProcess) -> None:
    _with_a_minute_ahead(30)  # four requests and a gateway restart in one rpm window
    key = _key(gateway, "durable", "--rpm", "3", "--tenant", "durable-tenant")
    admin = _key(gateway, "durable-admin", "--admin")
    first = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    for _ in range(2):
        first.chat.completions.create(model="instant", messages=MESSAGES)
    restarted = GatewayProcess(gateway.env, gateway.workdir).start()
    try:
        client = openai.OpenAI(base_url=restarted.url + "/v1", api_key=key, max_retries=0)
        client.chat.completions.create(model="instant", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="instant", messages=MESSAGES)
        # The key is past its 3 a minute for every route now, /v1/usage included.
        mine = httpx.get(restarted.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"})
        assert mine.status_code == 429
        report = httpx.get(
            restarted.url + "/v1/usage",
            params={"tenant": "durable-tenant"},
            headers={"Authorization": f"Bearer {admin}"},
        ).json()
        assert report["total"]["requests"] == 4  # 3 answered, 1 refused
        assert report["total"]["errors"] == 1
    finally:
        restarted.stop()
