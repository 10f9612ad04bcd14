"""The Messages translation's cost: the same question sent through `edgeroute serve` (one
uvicorn worker, SQLite store) as a chat completion and as an Anthropic Messages request,
to an instant local upstream, side by side in one run.

Sequential: N rounds one after another on keep-alive connections, each round sending the
direct request, the chat completion and the Message (buffered, then streamed), so machine
noise hits all alike. The translation's added latency is the Messages median minus the
chat median (and the same for the 99th percentiles); the gateway's own is chat minus
direct, as ``bench gateway`` reports it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable

import httpx

from bench.gateway_overhead import machine, pct, serving

ROUNDS = int(os.environ.get("BENCH_SEQUENTIAL", "1000"))
QUESTION = [{"role": "user", "content": "Say hello."}]
CHAT = {"model": "instant", "messages": QUESTION, "max_tokens": 8}
MESSAGES = {"model": "instant", "messages": QUESTION, "max_tokens": 8}


def _timed(send: Callable[[], httpx.Response]) -> float:
    t0 = time.perf_counter()
    send().raise_for_status()
    return (time.perf_counter() - t0) * 1000


def _summary(ms: dict[str, list[float]]) -> dict[str, float]:
    p50 = {name: statistics.median(values) for name, values in ms.items()}
    p99 = {name: pct(values, 0.99) for name, values in ms.items()}
    out = {f"{name}_p50_ms": value for name, value in p50.items()}
    out |= {f"{name}_p99_ms": value for name, value in p99.items()}
    out["messages_added_p50_ms"] = p50["messages"] - p50["chat"]
    out["messages_added_p99_ms"] = p99["messages"] - p99["chat"]
    out["messages_stream_added_p50_ms"] = p50["messages_stream"] - p50["chat_stream"]
    out["gateway_added_p50_ms"] = p50["chat"] - p50["direct"]
    return out


def _rounds(direct: str, gateway: str, key: str) -> dict[str, float]:
    ms: dict[str, list[float]] = {
        n: [] for n in ("direct", "chat", "messages", "chat_stream", "messages_stream")
    }
    bearer = {"Authorization": f"Bearer {key}"}
    anthropic = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    streamed = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(timeout=10) as dc, httpx.Client(timeout=10) as gc:
        sends: dict[str, Callable[[], httpx.Response]] = {
            "direct": lambda: dc.post(direct + "/chat/completions", json=CHAT),
            "chat": lambda: gc.post(gateway + "/v1/chat/completions", json=CHAT, headers=bearer),
            "messages": lambda: gc.post(gateway + "/v1/messages", json=MESSAGES, headers=anthropic),
            "chat_stream": lambda: gc.post(
                gateway + "/v1/chat/completions", json=streamed, headers=bearer
            ),
            "messages_stream": lambda: gc.post(
                gateway + "/v1/messages", json={**MESSAGES, "stream": True}, headers=anthropic
            ),
        }
        for _ in range(50):  # warm every path
            for send in sends.values():
                send()
        for _ in range(ROUNDS):
            for name, send in sends.items():
                ms[name].append(_timed(send))
    return _summary(ms)


def main() -> None:
    with serving() as (upstream_url, gateway, key):
        rounds = _rounds(upstream_url, gateway.url, key)
    result = {"machine": machine(), "rounds": ROUNDS, "sequential": rounds}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
