"""Input limits against the real gateway, through the openai SDK and raw HTTP: each
number and flag a client sends is of its JSON type and within its caps, the model's
rules hold for every target, a zero cost ceiling lets nothing priced through, a prompt
too long for every model is the caller's 400, and one request's work is bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.support.fault_upstream import FaultUpstream
from tests.support.gateway import GatewayProcess
from tests.support.openai_sdk import error_field, user_says

CEILING = "x-edgeroute-max-cost"
LONG_TEXT = "lorem ipsum dolor sit amet " * 200  # over 512 tokens: truncated to 512


def _post(gw: GatewayProcess, key: str, path: str, body: str | dict[str, Any]) -> httpx.Response:
    """A raw POST: ``body`` as a dict, or as JSON text when it holds literals (``1e30``)
    that a dict would not keep."""
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(
        gw.url + path,
        content=content,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )


def _refusal(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize("value", [10**12, 2**63])
def test_max_tokens_past_the_cap_is_refused_before_any_model(
    client: openai.OpenAI, value: int
) -> None:
    # smollm2's registry rule clamps max_tokens; the absolute cap comes first.
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="smollm2-135m", messages=user_says("hi"), max_tokens=value
        )
    assert error_field(caught.value, "param") == "max_tokens"
    assert "less than or equal to 1048576" in caught.value.message


@pytest.mark.parametrize(
    ("model", "literal", "param", "words"),
    [
        ("smollm2-135m", '"max_tokens": 1e12', "max_tokens", "must be a JSON integer"),
        ("smollm2-135m", '"max_tokens": 1e30', "max_tokens", "must be a JSON integer"),
        ("auto", '"max_completion_tokens": ' + "1" + "0" * 30, "max_completion_tokens", "1048576"),
        ("instant", '"temperature": NaN', "temperature", "finite number"),
        ("instant", '"max_tokens": "100"', "max_tokens", "must be a JSON integer"),
    ],
)
def test_raw_json_numbers_are_checked_for_type_and_size(
    gateway: GatewayProcess,
    api_key: str,
    fault_upstream: FaultUpstream,
    model: str,
    literal: str,
    param: str,
    words: str,
) -> None:
    sent = len(fault_upstream.bodies)
    body = f'{{"model": "{model}", "messages": [{{"role": "user", "content": "hi"}}], {literal}}}'

    error = _refusal(_post(gateway, api_key, "/v1/chat/completions", body))

    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert words in error["message"] and f"Fix '{param}'" in error["message"]
    assert len(fault_upstream.bodies) == sent  # nothing went upstream


def test_best_of_is_capped(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="smollm2-135m", prompt="Once", best_of=10**6)
    assert error_field(caught.value, "param") == "best_of"
    assert "less than or equal to 20" in caught.value.message


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("/v1/chat/completions", "stream", {}),
        ("/v1/chat/completions", "logprobs", {}),
        ("/v1/chat/completions", "parallel_tool_calls", {}),
        ("/v1/chat/completions", "store", {}),
        ("/v1/chat/completions", "stream_options.include_usage", {"stream": True}),
        ("/v1/completions", "echo", {}),
        ("/v1/completions", "stream", {}),
        ("/v1/embeddings", "truncate", {}),
    ],
)
def test_a_flag_must_be_a_json_boolean(
    gateway: GatewayProcess, api_key: str, path: str, field: str, body: dict[str, Any]
) -> None:
    bases: dict[str, dict[str, Any]] = {
        "/v1/chat/completions": {"model": "instant", "messages": user_says("hi")},
        "/v1/completions": {"model": "instant", "prompt": "hi"},
        "/v1/embeddings": {"model": "use-multilingual-v3", "input": "hi"},
    }
    base = bases[path]
    outer, _, inner = field.partition(".")
    for wrong in ("yes", "true", 1):
        value: Any = {inner: wrong} if inner else wrong
        error = _refusal(_post(gateway, api_key, path, {**base, **body, outer: value}))
        assert error["param"] == field
        assert "must be a JSON boolean, true or false" in error["message"]
    value = {inner: True} if inner else True
    if field != "stream":  # a JSON boolean is taken
        assert _post(gateway, api_key, path, {**base, **body, outer: value}).status_code == 200


def test_a_flag_sent_through_the_sdk_is_checked_too(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="instant", messages=user_says("hi"), extra_body={"stream": "yes"}
        )
    assert error_field(caught.value, "param") == "stream"


def test_a_prompt_too_long_for_every_model_is_a_400_for_auto(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="auto", messages=user_says("word " * 12000))
    assert error_field(caught.value, "code") == "context_length_exceeded"
    assert error_field(caught.value, "param") == "messages"
    assert "Shorten 'messages'" in caught.value.message
    assert "4096 tokens" in caught.value.message  # the largest window it could have had


def test_the_cost_ceiling_header_must_be_a_plain_amount(
    gateway: GatewayProcess, api_key: str, client: openai.OpenAI
) -> None:
    for path, body in (
        ("/v1/moderations", {"input": "hi"}),
        ("/v1/chat/completions", {"model": "instant", "messages": user_says("hi")}),
    ):
        for value in ("-1", "inf", "1e400", "nan", "0x10"):
            response = httpx.post(
                gateway.url + path,
                json=body,
                headers={"Authorization": f"Bearer {api_key}", CEILING: value},
            )
            error = _refusal(response)
            assert error["param"] == CEILING
            assert "x-edgeroute-max-cost" in error["message"] and "0 or more" in error["message"]
    with pytest.raises(openai.BadRequestError):
        client.moderations.create(input="hi", extra_headers={CEILING: "-0.5"})


def test_embeddings_work_per_request_is_bounded(client: openai.OpenAI) -> None:
    # The attacker's probe: 256 inputs of 20 kB, over the tokens one request may carry.
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(
            model="use-multilingual-v3",
            input=["x" * 20_000] * 256,
            extra_body={"truncate": True},
        )
    assert error_field(caught.value, "param") == "input"
    assert "at most 300000 tokens" in caught.value.message
    # Within that, the edge embedder's own bound: 64 inputs of 512 tokens each at most.
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(
            model="use-multilingual-v3", input=[LONG_TEXT] * 65, extra_body={"truncate": True}
        )
    assert error_field(caught.value, "code") == "max_tokens_per_request"
    assert "at most 32768 tokens per request" in caught.value.message
    fits = client.embeddings.create(
        model="use-multilingual-v3", input=[LONG_TEXT] * 8, extra_body={"truncate": True}
    )
    assert len(fits.data) == 8


def test_moderation_work_per_request_is_bounded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.moderations.create(input=["x" * 20_000] * 256)
    assert error_field(caught.value, "param") == "input"
    assert "at most 300000 tokens" in caught.value.message


# A gateway of its own for what the shared registry has no model for: a parameter rule
# on a fallback, and a price so small that a request costs under a micro-dollar.
@pytest.fixture(scope="module")
def limited(fault_upstream: FaultUpstream, workdir: Path) -> Iterator[GatewayProcess]:
    folder = workdir / "limits"
    folder.mkdir(exist_ok=True)
    common = {"protocol": "openai", "endpoint": fault_upstream.url, "tier": "medium",
              "capabilities": ["chat", "completions"], "retries": 0}  # fmt: skip
    single = {"n": {"min": 1, "max": 1, "rule": "reject"}}
    models = [
        {**common, "name": "down", "upstream_model": "status-500#limits", "fallbacks": ["one"]},
        {**common, "name": "one", "upstream_model": "instant#limits-one", "parameters": single},
        {**common, "name": "penny", "upstream_model": "instant#limits-penny",
         "price": {"input_per_mtok": 0.01, "output_per_mtok": 0.01}},
    ]  # fmt: skip
    (folder / "models.yaml").write_text(yaml.safe_dump({"models": models}))
    env = {
        "EDGEROUTE_REGISTRY": str(folder / "models.yaml"),
        "EDGEROUTE_SQLITE_PATH": str(folder / "edgeroute.db"),
    }
    with GatewayProcess(env, workdir) as process:
        yield process


@pytest.fixture(scope="module")
def limited_client(limited: GatewayProcess) -> openai.OpenAI:
    key = str(limited.create_key("limits")["api_key"])
    return openai.OpenAI(base_url=limited.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_n_over_a_fallbacks_limit_never_reaches_it(
    limited_client: openai.OpenAI, fault_upstream: FaultUpstream
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        limited_client.chat.completions.create(model="down", messages=user_says("hi"), n=3)
    assert caught.value.status_code == 502  # 'down' failed; 'one' takes n of 1 only
    assert fault_upstream.requests["instant#limits-one"] == 0
    with pytest.raises(openai.BadRequestError) as caught:
        limited_client.completions.create(model="one", prompt="hi", best_of=3)
    assert error_field(caught.value, "param") == "best_of"
    assert "outside the range [1, 1]" in caught.value.message
    assert fault_upstream.requests["instant#limits-one"] == 0
    fine = limited_client.chat.completions.create(model="down", messages=user_says("hi"), n=1)
    assert fine.model == "one"


def test_a_zero_ceiling_refuses_what_costs_under_a_micro_dollar(
    limited_client: openai.OpenAI, fault_upstream: FaultUpstream
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        limited_client.chat.completions.create(
            model="penny", messages=user_says("hi"), max_tokens=1, extra_headers={CEILING: "0"}
        )
    assert caught.value.status_code == 402
    assert error_field(caught.value, "param") == CEILING
    assert fault_upstream.requests["instant#limits-penny"] == 0
    paid = limited_client.chat.completions.create(
        model="penny", messages=user_says("hi"), max_tokens=1, extra_headers={CEILING: "0.01"}
    )
    assert paid.model == "penny"
