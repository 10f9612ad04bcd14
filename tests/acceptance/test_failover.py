"""Failover against real servers, through the openai SDK: llama.cpp as the healthy small
tier, the fault upstream playing every failure class (401, 429 with Retry-After, 500, a
hang) and a dead port. Each failure ends on the fallback with the right circuit state, a
target the probe marks down gets no traffic, an upper tier that is all down or failing
degrades ``auto`` to the local model with the header, and so does the example registry
on a laptop, where only the local model runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from edgeroute.config.registry import ModelSpec, Registry
from edgeroute.health.probe import probe_all
from edgeroute.store.sqlite import SQLiteStore
from edgeroute.upstreams.http import close_shared_client
from tests.acceptance.test_routing import HARD_CODE, _candidate, _route
from tests.support.fault_upstream import FaultUpstream, fault_model
from tests.support.gateway import GatewayProcess, policy_env
from tests.support.openai_sdk import user_says

REPO = Path(__file__).parents[2]
DEAD = "http://127.0.0.1:9/v1"
SMALL_RULES = {"max_tokens": {"min": 1, "max": 16, "default": 8, "rule": "clamp"}}
FAILING = {  # model -> (fault behaviour or endpoint, failure code, whose circuit opens)
    "fc-unreachable": ("instant#fc", "upstream_unavailable", "shared"),
    "fc-hang": ("timeout#fc", "upstream_timeout", "shared"),
    "fc-500": ("status-500#fc", "upstream_error", "tenant"),
    "fc-429": ("status-429#fc", "upstream_unavailable", "shared"),
    "fc-401": ("echo-401#fc", "upstream_auth_failed", "shared"),
}
QUICK = {"connect": 1, "read": 1, "total": 20}  # a hang fails in 1 s, leaving the rest time


def _registry(llama_url: str, fault: FaultUpstream) -> dict[str, Any]:
    def failing(name: str, behaviour: str, tier: str, price: float, **extra: Any) -> Any:
        return fault_model(
            name,
            fault.url,
            behaviour,
            tier=tier,
            capabilities=["chat"],
            parameters=SMALL_RULES,
            price={"input_per_mtok": price, "output_per_mtok": price},
            timeouts=QUICK,
            **extra,
        )

    models = [
        {"name": "local", "endpoint": llama_url, "tier": "small", "capabilities": ["chat"],
         "context_window": 2048, "parameters": SMALL_RULES,
         "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.2}},
        failing("mid-500", "status-500#auto", "medium", 1.0),
        failing("mid-401", "echo-401#auto", "medium", 1.5),
        failing("big-429", "status-429#auto", "large", 4.0),
        failing("big-hang", "timeout#auto", "large", 5.0),
        # Probed on its own path of the fault server: its own endpoint, its own sample.
        failing("probed", "instant#probed", "medium", 9.0, fallbacks=["local"],
                endpoint=fault.url.removesuffix("/v1") + "/probed/v1"),
    ]  # fmt: skip
    for name, (behaviour, _, _) in FAILING.items():
        extra = {"endpoint": DEAD} if name == "fc-unreachable" else {}
        models.append(failing(name, behaviour, "medium", 9.0, fallbacks=["local"], **extra))
    return {"models": models}


@pytest.fixture(scope="module")
def env(llama_url: str, fault_upstream: FaultUpstream, workdir: Path) -> dict[str, str]:
    folder = workdir / "failover"
    folder.mkdir(exist_ok=True)
    policy = yaml.safe_load((REPO / "infra" / "routing.yaml").read_text())
    policy["health_ttl_s"] = 0.2
    policy["circuit"] = {"failures_to_open": 2, "window_s": 300, "cool_down_s": 120}
    return policy_env(folder, _registry(llama_url, fault_upstream), policy)


@pytest.fixture(scope="module")
def gateway(env: dict[str, str], workdir: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(env, workdir) as process:
        yield process


def _sdk(gw: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def keys(gateway: GatewayProcess) -> dict[str, str]:
    """One key for each of two tenants."""
    return {
        tenant: str(gateway.create_key(tenant, "--tenant", tenant)["api_key"])
        for tenant in ("acme", "globex")
    }


def test_an_all_down_upper_tier_degrades_auto_to_the_local_model(
    gateway: GatewayProcess, keys: dict[str, str]
) -> None:
    client = _sdk(gateway, keys["acme"])
    assert _route(gateway, keys["acme"], user_says(HARD_CODE))["min_tier"] == "large"

    first = client.chat.completions.with_raw_response.create(
        model="auto", messages=user_says(HARD_CODE), max_tokens=8
    )

    assert first.headers["x-edgeroute-model"] == "local"
    assert first.headers["x-edgeroute-degraded"] == "true"
    reason = first.headers["x-edgeroute-degraded-reason"]
    assert reason.startswith("answered by small below large: "), reason
    for failed in ("big-429: upstream_unavailable", "big-hang: upstream_timeout", "mid-500"):
        assert failed in reason, reason
    assert first.parse().choices[0].message.content is not None
    # The 429 named its Retry-After: big-429 is skipped until then, and /v1/route says so.
    explained = _route(gateway, keys["acme"], user_says(HARD_CODE))
    assert _candidate(explained, "big-429")["dropped"].startswith("circuit open until ")
    with client.chat.completions.with_streaming_response.create(
        model="auto", messages=user_says(HARD_CODE), max_tokens=8, stream=True
    ) as streamed:
        assert streamed.headers["x-edgeroute-model"] == "local"
        assert streamed.headers["x-edgeroute-degraded"] == "true"
        assert "big-429: circuit open until" in streamed.headers["x-edgeroute-degraded-reason"]
        assert list(streamed.iter_lines())


@pytest.mark.parametrize("model", sorted(FAILING))
def test_each_failure_class_ends_on_the_fallback_with_its_circuit(
    gateway: GatewayProcess, keys: dict[str, str], model: str
) -> None:
    _, code, whose = FAILING[model]
    client = _sdk(gateway, keys["acme"])

    answers = [
        client.chat.completions.with_raw_response.create(
            model=model, messages=user_says("hello"), max_tokens=4
        )
        for _ in range(2)
    ]

    assert [a.headers["x-edgeroute-model"] for a in answers] == ["local", "local"]
    assert f"{model}: {code}" in answers[0].headers["x-edgeroute-route-reason"]
    mine = _candidate(_route(gateway, keys["acme"], user_says("hello"), model=model), model)
    theirs = _candidate(_route(gateway, keys["globex"], user_says("hello"), model=model), model)
    assert mine["dropped"].startswith("circuit open until "), mine
    assert ("dropped" in theirs) is (whose == "shared"), theirs


def test_an_endpoint_the_probe_marks_down_gets_no_traffic(
    gateway: GatewayProcess,
    keys: dict[str, str],
    env: dict[str, str],
    fault_upstream: FaultUpstream,
) -> None:
    client = _sdk(gateway, keys["acme"])
    spec = next(m for m in _registry("", fault_upstream)["models"] if m["name"] == "probed")
    probed = Registry([ModelSpec.model_validate({**spec, "fallbacks": []})])  # probed alone

    async def probe() -> None:
        store = SQLiteStore(env["EDGEROUTE_SQLITE_PATH"])
        try:
            await probe_all(probed, store)
        finally:
            await close_shared_client()
            await store.close()

    fault_upstream.health_status = 503
    try:
        asyncio.run(probe())
    finally:
        fault_upstream.health_status = 200
    time.sleep(0.3)  # the gateway's health TTL
    before = fault_upstream.requests["instant#probed"]

    answers = [
        client.chat.completions.with_raw_response.create(
            model="probed", messages=user_says("hello"), max_tokens=4
        )
        for _ in range(3)
    ]

    assert [a.headers["x-edgeroute-model"] for a in answers] == ["local"] * 3
    assert fault_upstream.requests["instant#probed"] == before  # not one request
    assert "probe: down since " in answers[0].headers["x-edgeroute-route-reason"]
    dropped = _candidate(
        _route(gateway, keys["acme"], user_says("hello"), model="probed"), "probed"
    )["dropped"]
    assert dropped.startswith("probe: down since ")
    asyncio.run(probe())  # healthy again: traffic returns with the next sample
    time.sleep(0.3)
    back = client.chat.completions.with_raw_response.create(
        model="probed", messages=user_says("hello"), max_tokens=4
    )
    assert back.headers["x-edgeroute-model"] == "probed"
    assert fault_upstream.requests["instant#probed"] == before + 1


@pytest.fixture(scope="module")
def laptop(llama_url: str, workdir: Path) -> Iterator[GatewayProcess]:
    """`edgeroute serve` as `make run` starts it: the example registry and policy, only
    the local llama.cpp model running, no AWS access for the large model's secret."""
    folder = workdir / "laptop"
    env = {
        "EDGEROUTE_REGISTRY": str(REPO / "infra" / "models.yaml"),
        "EDGEROUTE_POLICY": "",
        "EDGEROUTE_SQLITE_PATH": str(folder / "edgeroute.db"),
        "EDGEROUTE_LOCAL_LLM_URL": llama_url,
        "EDGEROUTE_VLLM_URL": DEAD,  # nothing serves the medium model
        "EDGEROUTE_TGI_URL": DEAD.removesuffix("/v1"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "none"),
        "AWS_CONFIG_FILE": str(folder / "none"),
        "AWS_REGION": "us-east-1",
    }
    with GatewayProcess(env, workdir) as process:
        yield process


def test_a_laptop_answers_hard_auto_prompts_from_the_local_model_labelled(
    laptop: GatewayProcess,
) -> None:
    client = _sdk(laptop, str(laptop.create_key("laptop")["api_key"]))

    for _ in range(2):  # the second after the large model's failure was counted
        answer = client.chat.completions.with_raw_response.create(
            model="auto", messages=user_says(HARD_CODE), max_tokens=8
        )
        assert answer.headers["x-edgeroute-model"] == "smollm2-135m"
        assert answer.headers["x-edgeroute-degraded"] == "true"
        assert answer.headers["x-edgeroute-degraded-reason"].startswith(
            "answered by small below large: "
        )
        assert answer.parse().choices[0].message.content is not None
    log = laptop.log.read_text()
    assert "model 'llama-3.1-405b' at http://127.0.0.1:9 cannot be called" in log
