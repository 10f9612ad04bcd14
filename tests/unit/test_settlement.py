"""Settlement: whatever way a request ends, the key's quota counters end up holding what
it really used, and the ledger holds one line for the request (plus one per failed
attempt).

The key has every limit (requests and tokens per minute, tokens per day, a monthly
budget), so each counter's reservation and its reconciliation are visible.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from edgeroute.errors import UpstreamUnavailable
from edgeroute.store.base import ApiKey, KeyLimits, UsageRecord
from tests.support.inprocess import (
    Client,
    add_key,
    chat_body,
    counters,
    ledger,
    memory_gateway,
    sse_events,
)
from tests.support.scripted_upstream import Answer, Cut, Fail, Hang, ScriptedUpstream, Status

REGISTRY = """
models:
  - {name: priced, endpoint: 'http://priced:1/v1', tier: small, retries: 1,
     price: {input_per_mtok: 1000, output_per_mtok: 2000},
     timeouts: {connect: 0.3, read: 0.3, total: 0.3}}
  - {name: first, endpoint: 'http://first:1/v1', tier: small, retries: 0, fallbacks: [priced]}
"""
LIMITS = KeyLimits(rpm=100, tpm=100_000, tokens_per_day=1_000_000, budget_usd_micros=10**8)
# The scripted upstream reports 7 prompt and 5 completion tokens:
# 7 x $1000/M + 5 x $2000/M = $0.017.
USED = {"requests": 1, "tokens": 12, "tokens_per_day": 12, "budget": 17_000}
NOTHING = {"requests": 1, "tokens": 0, "tokens_per_day": 0, "budget": 0}


@dataclass
class Account:
    """A key on a fresh gateway, and readers for what its store holds since."""

    client: Client
    key: ApiKey
    since: float = field(default_factory=time.time)

    async def counters(self) -> dict[str, int]:
        return await counters(self.client.gw, self.key, self.since)

    async def ledger(self) -> list[UsageRecord]:
        return await ledger(self.client.gw, self.since)


async def open_account(limits: KeyLimits = LIMITS) -> Account:
    gw = memory_gateway(REGISTRY)
    secret, key = await add_key(gw, limits=limits)
    return Account(Client(gw, secret), key)


@pytest.fixture
async def account() -> Account:
    return await open_account()


def charged(record: UsageRecord) -> dict[str, int]:
    """What the counters should hold after this one request."""
    tokens = record.prompt_tokens + record.completion_tokens
    return {
        "requests": 1,
        "tokens": tokens,
        "tokens_per_day": tokens,
        "budget": record.cost_usd_micros,
    }


def lines(records: list[UsageRecord]) -> list[tuple[str, int, int]]:
    """(request id, status, tokens) per ledger line, in the order written."""
    return [(r.request_id, r.status, r.prompt_tokens + r.completion_tokens) for r in records]


@pytest.mark.parametrize("stream", [False, True])
async def test_success_charges_the_real_usage_once(
    account: Account, upstream: ScriptedUpstream, stream: bool
) -> None:
    response = await account.client.chat("priced", stream=stream, max_tokens=50)

    assert response.status_code == 200
    assert await account.counters() == USED  # the reservation was reconciled
    records = await account.ledger()
    rid = response.headers["x-request-id"]
    assert lines(records) == [(rid, 200, 12)]
    assert records[0].cost_usd_micros == 17_000
    assert records[0].attempts == 1 and not records[0].usage_estimated


@pytest.mark.parametrize("stream", [False, True])
async def test_unreported_usage_is_counted_and_charged_as_counted(
    account: Account, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script("priced", Answer("four words of answer", usage=None))

    response = await account.client.chat("priced", stream=stream, max_tokens=50)

    assert response.status_code == 200
    [record] = await account.ledger()
    assert record.usage_estimated and record.completion_tokens > 0
    assert await account.counters() == charged(record)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_error_gives_everything_back(
    account: Account, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script("priced", Status(500, "model crashed"))

    response = await account.client.chat("priced", stream=stream, max_tokens=50)

    assert response.status_code == 502
    assert await account.counters() == NOTHING
    rid = response.headers["x-request-id"]
    # One line per failed attempt, then the request's own line.
    assert lines(await account.ledger()) == [
        (f"{rid}#1", 502, 0),
        (f"{rid}#2", 502, 0),
        (rid, 502, 0),
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_timeout_gives_everything_back(
    account: Account, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script("priced", Hang())

    response = await account.client.chat("priced", stream=stream, max_tokens=50)

    assert response.status_code == 504
    assert await account.counters() == NOTHING
    rid = response.headers["x-request-id"]
    records = lines(await account.ledger())
    if stream:
        assert records == [(f"{rid}#1", 504, 0), (rid, 504, 0)]
    else:
        # A buffered attempt the deadline cancels gets no line of its own (today).
        assert records == [(rid, 504, 0)]


@pytest.mark.parametrize("stream", [False, True])
async def test_an_unexpected_failure_gives_everything_back(
    account: Account, upstream: ScriptedUpstream, stream: bool
) -> None:
    upstream.script("priced", Fail(RuntimeError("adapter bug")))

    response = await account.client.chat("priced", stream=stream, max_tokens=50)

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert await account.counters() == NOTHING
    assert [(r.status, r.prompt_tokens + r.completion_tokens) for r in await account.ledger()] == [
        (500, 0)
    ]


async def charged_for_the_part_relayed(account: Account, request_id: str, status: int) -> None:
    """One ledger line with the tokens counted in what was relayed, and no more held."""
    [record] = await account.ledger()
    assert (record.request_id, record.status) == (request_id, status)
    assert record.usage_estimated and record.completion_tokens > 0
    assert await account.counters() == charged(record)


async def test_a_stream_cut_midway_charges_what_was_relayed(
    account: Account, upstream: ScriptedUpstream
) -> None:
    upstream.script("priced", Cut(after_chunks=2))

    response = await account.client.chat("priced", stream=True, max_tokens=50)

    assert sse_events(response.content)[-1]["error"]["code"] == "upstream_truncated"
    await charged_for_the_part_relayed(account, response.headers["x-request-id"], 502)


async def test_a_client_hanging_up_midway_settles_once_and_closes_the_upstream(
    account: Account, upstream: ScriptedUpstream
) -> None:
    upstream.script("priced", Hang(after_chunks=2))

    headers, received = await account.client.hang_up_after(
        2, chat_body("priced", stream=True, max_tokens=50)
    )

    assert len(received) == 2
    assert upstream.calls[0].closed  # the gateway hung up on the upstream too
    await charged_for_the_part_relayed(account, headers["x-request-id"], 499)


async def test_a_request_refused_at_admission_holds_nothing(upstream: ScriptedUpstream) -> None:
    account = await open_account(KeyLimits(rpm=100, tpm=1_000, budget_usd_micros=10**8))

    response = await account.client.chat("priced", max_tokens=2_000)  # more than the tpm

    assert response.status_code == 429
    assert await account.counters() == {"requests": 0, "tokens": 0, "budget": 0}
    assert lines(await account.ledger()) == [(response.headers["x-request-id"], 429, 0)]
    assert upstream.calls == []


async def test_failed_attempts_before_a_fallback_answer_cost_nothing(
    account: Account, upstream: ScriptedUpstream
) -> None:
    upstream.script("first", Fail(UpstreamUnavailable("first is down")))

    response = await account.client.chat("first", max_tokens=50)

    assert response.headers["x-edgeroute-model"] == "priced"
    rid = response.headers["x-request-id"]
    assert lines(await account.ledger()) == [(f"{rid}#1", 503, 0), (rid, 200, 12)]
    assert await account.counters() == USED


MODERATION_REGISTRY = """
models:
  - {name: edge-moderation, protocol: edge, tier: edge, capabilities: [moderation],
     price: {input_per_mtok: 1000, output_per_mtok: 0}}
"""


@pytest.mark.parametrize("fails", [False, True], ids=["answered", "scorer-failed"])
async def test_moderation_settles_once_whatever_happens(
    fails: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def results(texts: list[str]) -> list[dict[str, object]]:
        if fails:
            raise RuntimeError("moderation model failed")
        return [{"flagged": False} for _ in texts]

    monkeypatch.setattr("edgeroute.edge.moderation.moderate", results)
    gw = memory_gateway(MODERATION_REGISTRY)
    secret, key = await add_key(gw, limits=LIMITS)
    since = time.time()

    response = await Client(gw, secret).post("/v1/moderations", {"input": "a friendly note"})

    [record] = await ledger(gw, since)
    assert record.endpoint == "moderations"
    assert await counters(gw, key, since) == (NOTHING if fails else charged(record))
    if fails:
        assert (response.status_code, record.status, record.prompt_tokens) == (500, 500, 0)
    else:
        assert (response.status_code, record.status) == (200, 200)
        assert record.prompt_tokens > 0
