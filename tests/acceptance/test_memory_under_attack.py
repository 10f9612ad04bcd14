"""Bounded resources under abuse, against a real `edgeroute serve` process: heads past
the header cap are refused at once without memory growth (four 64 MB headers took
21.7 s and grew the process by 260 MB before), a short run of the attack corpus keeps
the process under its memory ceiling with /healthz answering throughout, and one
tenant's requests that make the upstream fail do not take the model from another
(17 of 24 of the other tenant's requests were 503 before)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import GatewayProcess
from tests.support.memory_attack import Target, Watch, headers_64mb, rss_mb, run_attack

CEILING_MB = 900  # generous: the gateway starts near 200 MB with its edge models


@pytest.fixture(scope="module")
def served(
    fault_upstream: FaultUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, Target]]:
    work = tmp_path_factory.mktemp("attack")
    registry = work / "models.yaml"
    models = [
        fault_model("instant", fault_upstream.url, "instant"),
        fault_model("fragile", fault_upstream.url, "poison#blast"),
    ]
    registry.write_text(yaml.safe_dump({"models": models}))
    env = {
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(work / "store" / "edgeroute.db"),
        "EDGEROUTE_MEMORY_LIMIT_MB": str(CEILING_MB),
    }
    with GatewayProcess(env, work) as gateway:
        key = str(gateway.create_key("attacker")["api_key"])
        limited = str(gateway.create_key("flooder", "--max-concurrent", "4")["api_key"])
        yield gateway, Target(gateway.url, key, limited, "instant")


def _pid(gateway: GatewayProcess) -> int:
    assert gateway.proc is not None
    return gateway.proc.pid


def test_four_64mb_headers_are_a_quick_431_without_memory_growth(
    served: tuple[GatewayProcess, Target],
) -> None:
    gateway, target = served
    before = rss_mb(_pid(gateway))
    with Watch(_pid(gateway), gateway.url) as watch:
        started = time.perf_counter()
        answers = headers_64mb(target, 1.0)
        took = time.perf_counter() - started

    assert answers == ["431"] * 4
    assert took < 15, f"{took:.1f} s"
    assert watch.peak_mb - before < 40, (before, watch.peak_mb)
    assert watch.health_failures == []


def test_a_head_under_the_cap_passes_with_its_body_in_the_same_read(
    served: tuple[GatewayProcess, Target],
) -> None:
    _, target = served
    host, port = target.host_port
    body = json.dumps(
        {"model": "instant", "messages": [{"role": "user", "content": "hello " * 1500}]}
    ).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
        + f"authorization: Bearer {target.key}\r\n".encode()
        + b"x-padding: "
        + b"p" * 60_000
        + b"\r\n"
        + f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
    )
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head + body)  # one write: head and body arrive together
        reply = sock.recv(65536)

    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]


def test_the_attack_corpus_stays_under_the_ceiling_with_healthz_answering(
    served: tuple[GatewayProcess, Target],
) -> None:
    gateway, target = served

    report = run_attack(_pid(gateway), target, scale=0.05)

    figures = report.as_json()
    assert figures["peak_mb"] < CEILING_MB, figures
    assert figures["healthz_failures"] == [], figures
    assert figures["healthz_checks"] > 0 and figures["healthz_slowest_s"] < 2.0, figures
    answers = [a for case in figures["cases"] for a in case["answers"]]
    assert not [a for a in answers if a.startswith("5")], figures  # refusals, never failures
    many = next(c for c in figures["cases"] if c["case"] == "many-headers")["answers"]
    assert many == {"431": 1}, many
    flood = next(c for c in figures["cases"] if c["case"] == "flood-one-key")["answers"]
    assert flood.get("429 concurrency_limit_exceeded", 0) > 0, flood
    health = httpx.get(gateway.url + "/healthz").json()
    assert health["memory"]["limit_mb"] == CEILING_MB and not health["memory"]["overloaded"]


def test_one_tenants_failing_requests_leave_the_model_to_the_others(
    served: tuple[GatewayProcess, Target],
) -> None:
    gateway, _ = served
    keys = {t: str(gateway.create_key(t, "--tenant", t)["api_key"]) for t in ("t-a", "t-b")}

    def chat(tenant: str, text: str) -> httpx.Response:
        body = {"model": "fragile", "messages": [{"role": "user", "content": text}]}
        auth = {"authorization": f"Bearer {keys[tenant]}"}
        return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=auth, timeout=30)

    poisoned = [chat("t-a", "POISON input the model cannot take").status_code for _ in range(3)]
    paused = chat("t-a", "an ordinary question")
    others = [chat("t-b", f"question {i}").status_code for i in range(24)]

    assert poisoned == [502] * 3
    assert paused.status_code == 503 and paused.json()["error"]["code"] == "circuit_open"
    assert others == [200] * 24
