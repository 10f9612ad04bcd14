"""The gateway through the official openai SDK, against llama.cpp's real server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.support.gateway import GatewayProcess
from tests.support.openai_sdk import error_field


def test_chat_completion(client: openai.OpenAI) -> None:
    response = client.chat.completions.with_raw_response.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "Say hello in one word."}],
        max_tokens=8,
        temperature=0,
    )
    completion = response.parse()
    assert completion.choices[0].message.content
    assert completion.model == "smollm2-135m"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert response.headers["x-edgeroute-model"] == "smollm2-135m"
    assert response.headers["x-edgeroute-tier"] == "small"
    assert response.headers["x-edgeroute-attempts"] == "1"
    assert response.headers["x-request-id"].startswith("req_")


def test_alias_resolves_to_model(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert completion.model == "smollm2-135m"


def test_chat_stream_with_usage_in_last_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.model for c in chunks} == {"smollm2-135m"}


def test_chat_stream_without_usage_asked_has_none(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=6,
        stream=True,
    )
    chunks = list(stream)
    assert chunks and all(c.usage is None for c in chunks)


def test_stop_seed_and_n_pass_through(client: openai.OpenAI) -> None:
    def ask() -> ChatCompletion:
        return client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "List three colours."}],
            max_tokens=24,
            temperature=0.8,
            seed=7,
            stop=["\n\n"],
        )

    first = ask()
    second = ask()
    assert first.choices[0].message.content == second.choices[0].message.content


def test_legacy_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model="smollm2-135m", prompt="Once upon a time", max_tokens=8
    )
    assert completion.choices[0].text
    assert completion.usage is not None and completion.usage.prompt_tokens > 0


def test_embeddings_forwarded_upstream(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="smollm2-135m", input=["hello", "world"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) > 100
    assert result.usage.prompt_tokens > 0


def test_models_list_has_registry_extras(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    models = {m.id: m for m in client.models.list()}
    assert "smollm2-135m" in models
    card = models["smollm2-135m"].model_dump()
    assert card["tier"] == "small"
    assert card["context_window"] == 2048
    assert "chat" in card["capabilities"]
    assert card["pricing"] == {"input_per_mtok_usd": 1.0, "output_per_mtok_usd": 2.0}
    assert client.models.retrieve("smollm2-135m").id == "smollm2-135m"


def test_healthz_needs_no_key(gateway: GatewayProcess) -> None:
    body = httpx.get(gateway.url + "/healthz").json()
    assert body["status"] == "ok" and body["models"] >= 1


# -- error paths -----------------------------------------------------------------


def test_bad_key_is_authentication_error(gateway: GatewayProcess) -> None:
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="er-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 401
    assert "no such key" in caught.value.message


def test_missing_key_is_401_in_openai_shape(gateway: GatewayProcess) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "small"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Authorization: Bearer" in error["message"]


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert error_field(caught.value, "param") == "model"
    assert "gpt-9" in caught.value.message and "/v1/models" in caught.value.message


def test_temperature_out_of_model_range_names_the_range(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": "x"}], temperature=1.8
        )
    assert error_field(caught.value, "param") == "temperature"
    assert "[0, 1.5]" in caught.value.message


def test_temperature_outside_api_range(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="instant", messages=[{"role": "user", "content": "x"}], temperature=3.5
        )
    assert "temperature" in caught.value.message and "[0, 2]" in caught.value.message


def test_clamped_parameter_is_accepted(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}], max_tokens=5000
    )
    assert completion.usage is not None and completion.usage.completion_tokens <= 256


def test_forbidden_model_for_restricted_key(gateway: GatewayProcess) -> None:
    key = gateway.create_key("restricted", "--models", "instant")["api_key"]
    restricted = openai.OpenAI(base_url=gateway.url + "/v1", api_key=str(key), max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        restricted.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": "x"}]
        )
    assert "instant" in caught.value.message
    assert [m.id for m in restricted.models.list()] == ["instant"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "small"}, "messages", "Missing required parameter 'messages'"),
        ({"model": "small", "messages": []}, "messages", "at least 1"),
        (
            {"model": "small", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "role",
        ),
        (
            {"model": "small", "messages": [{"role": "user", "content": "x"}], "n": 0},
            "n",
            "greater",
        ),
        (
            {
                "model": "small",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": "lots",
            },
            "max_tokens",
            "integer",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}]},
            "model",
            "Missing required parameter 'model'",
        ),
    ],
)
def test_invalid_bodies_name_the_field(
    gateway: GatewayProcess, api_key: str, body: dict[str, object], param: str, words: str
) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"


def test_not_json_is_400(gateway: GatewayProcess, api_key: str) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_body_too_large_is_413(gateway: GatewayProcess, api_key: str) -> None:
    huge = "x" * (7 * 1024 * 1024)
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "small", "messages": [{"role": "user", "content": huge}]},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_context_too_large_is_400_as_openai_answers(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "word " * 12000}],
        )
    assert error_field(caught.value, "code") == "context_length_exceeded"
    assert error_field(caught.value, "param") == "messages"
    assert "context window of 2048" in caught.value.message


def test_capability_missing_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="chat-only", prompt="x")
    assert "does not support completions" in caught.value.message


def test_unknown_route_is_404_in_openai_shape(gateway: GatewayProcess) -> None:
    response = httpx.get(gateway.url + "/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_route"


def test_curl_style_form_content_type_is_read_as_json(
    gateway: GatewayProcess, api_key: str
) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=b'{"model": "instant", "messages": [{"role": "user", "content": "hi"}]}',
        headers={
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 200, response.text


def test_chunked_body_over_the_limit_is_413(gateway: GatewayProcess, api_key: str) -> None:
    def chunks() -> Iterator[bytes]:  # no content-length: the limit is counted as it streams
        yield b'{"model": "instant", "messages": [{"role": "user", "content": "'
        for _ in range(7):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_embeddings_cannot_stream(gateway: GatewayProcess, api_key: str) -> None:
    response = httpx.post(
        gateway.url + "/v1/embeddings",
        json={"model": "smollm2-135m", "input": "x", "stream": True},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stream"


def test_cost_ceiling_applies_to_named_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="instant",
            messages=[{"role": "user", "content": "x" * 400}],
            extra_headers={"x-edgeroute-max-cost": "0.000000001"},
        )
    assert caught.value.status_code == 402
    assert "x-edgeroute-max-cost" in caught.value.message
    fine = client.chat.completions.with_raw_response.create(
        model="instant",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-edgeroute-max-cost": "1"},
    )
    assert fine.status_code == 200
