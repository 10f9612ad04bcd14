"""Recovery after an endpoint returns: how soon the first request reaches it again.

A model whose endpoint is down (nothing listens on its port) has a declared fallback;
requests go on every 10 ms until its circuit opens (the fallback answers in one
attempt), then a server starts on the port at once. Measured per run: the time from
the endpoint's return to the first request it answers, and the lag after the circuit's
half-open window (the cool-down from when it opened) before that request. Each run
stops the server again, and the trial request that fails reopens the circuit.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from tests.support.fault_upstream import FaultUpstream
from tests.support.gateway import GatewayProcess, free_port

RUNS = 10
COOL_DOWN_S = 2.0
POLL_S = 0.01


def _models(port: int, spare_url: str) -> dict[str, object]:
    quick = {"connect": 1, "read": 2, "total": 5}
    return {
        "models": [
            {"name": "primary", "endpoint": f"http://127.0.0.1:{port}/v1",
             "upstream_model": "instant", "tier": "small", "retries": 0, "timeouts": quick,
             "fallbacks": ["spare"]},
            {"name": "spare", "endpoint": spare_url, "upstream_model": "instant",
             "tier": "small", "retries": 0, "timeouts": quick},
        ]
    }  # fmt: skip


def _ask(client: httpx.Client) -> tuple[str, int]:
    """Which model answered one request, and in how many attempts."""
    body = {"model": "primary", "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/v1/chat/completions", json=body)
    response.raise_for_status()
    return response.headers["x-edgeroute-model"], int(response.headers["x-edgeroute-attempts"])


def _until_open(client: httpx.Client) -> float:
    """Send requests until primary's circuit is open; when the request that opened it ended."""
    opened_at = time.perf_counter()
    while True:
        model, attempts = _ask(client)
        if model == "spare" and attempts == 1:
            return opened_at
        opened_at = time.perf_counter()
        time.sleep(POLL_S)


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, FaultUpstream() as spare:
        folder = Path(tmp)
        policy = {
            "circuit": {"failures_to_open": 2, "window_s": 60, "cool_down_s": COOL_DOWN_S},
            "health_ttl_s": 2,
        }
        (folder / "models.yaml").write_text(yaml.safe_dump(_models(port, spare.url)))
        (folder / "routing.yaml").write_text(yaml.safe_dump(policy))
        env = {
            "EDGEROUTE_REGISTRY": str(folder / "models.yaml"),
            "EDGEROUTE_POLICY": str(folder / "routing.yaml"),
            "EDGEROUTE_SQLITE_PATH": str(folder / "edgeroute.db"),
            "EDGEROUTE_CLASSIFY": "auto",
        }
        with GatewayProcess(env, folder) as gateway:
            key = str(gateway.create_key("bench")["api_key"])
            headers = {"Authorization": f"Bearer {key}"}
            recovery, lag = [], []
            with httpx.Client(base_url=gateway.url, headers=headers, timeout=10) as client:
                for _ in range(RUNS):
                    opened = _until_open(client)
                    with FaultUpstream(port=port):
                        returned = time.perf_counter()
                        while _ask(client)[0] != "primary":
                            time.sleep(POLL_S)
                        back = time.perf_counter()
                    recovery.append(back - returned)
                    lag.append(back - (opened + COOL_DOWN_S))
    print(
        json.dumps(
            {
                "runs": RUNS,
                "cool_down_s": COOL_DOWN_S,
                "poll_interval_s": POLL_S,
                "recovery_s_p50": round(statistics.median(recovery), 3),
                "recovery_s_max": round(max(recovery), 3),
                "lag_after_half_open_s_p50": round(statistics.median(lag), 3),
                "lag_after_half_open_s_max": round(max(lag), 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
