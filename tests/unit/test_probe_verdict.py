"""What the probe's sample says about an endpoint, which the router now acts on: a server
with no /health route is up, 5xx is down, and a sample that stays down keeps the time
it went down (``/v1/route`` says "probe: down since" that time)."""

from __future__ import annotations

import httpx
import pytest

from edgeroute.config.registry import ModelSpec, Registry
from edgeroute.health import probe
from edgeroute.store.sqlite import SQLiteStore

MODEL = ModelSpec(name="m", endpoint="http://m:1/v1", tier="small")


@pytest.fixture
def health_answers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The status each GET /health answers with, in order (the last repeats)."""
    statuses: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(statuses.pop(0) if len(statuses) > 1 else statuses[0])
        return httpx.Response(404)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    monkeypatch.setattr(probe, "shared_client", lambda: client)
    return statuses


@pytest.mark.parametrize("status", [404, 405])
async def test_a_server_without_a_health_route_is_up(
    health_answers: list[int], status: int
) -> None:
    health_answers.append(status)  # (5xx and no answer are down: test_health_probe.py)
    sample = await probe.probe_endpoint(MODEL)
    assert sample.ok and sample.error is None and sample.down_since is None


async def test_a_sample_that_stays_down_keeps_when_it_went_down(
    health_answers: list[int],
) -> None:
    health_answers.extend([503, 503, 200, 503])
    store = SQLiteStore(":memory:")
    registry = Registry([MODEL])

    first, second, healthy, again = [
        (await probe.probe_all(registry, store))[MODEL.endpoint] for _ in range(4)
    ]

    assert first["down_since"] == first["checked_at"]
    assert second["down_since"] == first["down_since"] < second["checked_at"]
    assert healthy["ok"] and healthy["down_since"] is None
    assert again["down_since"] == again["checked_at"]
    assert (await store.get_health([MODEL.endpoint]))[MODEL.endpoint]["down_since"] == (
        again["down_since"]
    )
