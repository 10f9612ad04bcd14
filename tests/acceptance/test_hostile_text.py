"""Hostile text against `edgeroute serve` and llama.cpp, each probe on one keep-alive
connection, as an attacker's probe sends it.

A lone UTF-16 surrogate (``"\\ud800"`` in JSON, or its CESU-8 bytes) is not valid
Unicode: every route answers 400 ``invalid_unicode`` naming the field, before any work.
NUL, bidi controls, zero-width characters and noncharacters are valid text: they go to
the upstream and back, are cached and are accounted. Whatever the answer, the next
request on the same connection succeeds (once, a surrogate was a 500 and the server then
closed the connection, resetting the client's next request). Repeated query parameters
are refused with a 400 naming the parameter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayProcess

Body = dict[str, Any]

VALID = {
    "nul": "\x00",
    "rtl-override": "\u202e",
    "zero-width-space": "\u200b",
    "byte-order-mark": "\ufeff",
    "noncharacter": "\uffff",
}
SURROGATES = {"high": "\ud800", "low": "\udfff", "reversed-pair": "\ude00\ud83d"}


def _chat(model: str, **extra: Any) -> Callable[[str], Body]:
    def body(text: str) -> Body:
        content = f"Say hi {text} now"
        return {"model": model, "messages": [{"role": "user", "content": content}], **extra}

    return body


# name: (path, body for a text, the field the text is in, what a 200 answer holds)
ROUTES: dict[str, tuple[str, Callable[[str], Body], str, str]] = {
    "chat": (
        "/v1/chat/completions",
        _chat("smollm2", max_tokens=2),
        "messages[0].content",
        '"choices"',
    ),
    "chat-stream": (
        "/v1/chat/completions",
        _chat("smollm2", max_tokens=2, stream=True),
        "messages[0].content",
        "data: [DONE]",
    ),
    "completions": (
        "/v1/completions",
        lambda text: {"model": "smollm2", "max_tokens": 2, "prompt": f"Say hi {text} now"},
        "prompt",
        '"text_completion"',
    ),
    "embeddings-edge": (
        "/v1/embeddings",
        lambda text: {"model": "edge-embed", "input": ["fine", f"Say hi {text} now"]},
        "input[1]",
        '"embedding"',
    ),
    "embeddings-llama": (
        "/v1/embeddings",
        lambda text: {"model": "smollm2", "input": f"Say hi {text} now"},
        "input",
        '"embedding"',
    ),
    "moderations": (
        "/v1/moderations",
        lambda text: {"input": f"Say hi {text} now"},
        "input",
        '"results"',
    ),
    "classify": ("/v1/classify", _chat("auto"), "messages[0].content", '"classification"'),
    "route": ("/v1/route", _chat("auto"), "messages[0].content", '"route"'),
}


@pytest.fixture
def http(gateway: GatewayProcess, api_key: str) -> Iterator[httpx.Client]:
    """One client that keeps its connection open between requests."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=60) as client:
        yield client


def _post(http: httpx.Client, path: str, raw: bytes) -> httpx.Response:
    return http.post(path, content=raw, headers={"content-type": "application/json"})


def _utf8(body: Body) -> bytes:
    """As the SDKs send it: text as UTF-8, control characters escaped."""
    return json.dumps(body, ensure_ascii=False).encode()


def _escaped(body: Body) -> bytes:
    """Every non-ASCII character as ``\\uXXXX``: the one way JSON spells a lone surrogate."""
    return json.dumps(body).encode()


def _connection(response: httpx.Response) -> tuple[str, int]:
    """The client's end of the connection that carried ``response``."""
    address: tuple[str, int] = response.extensions["network_stream"].get_extra_info("client_addr")
    return address


def _assert_refused_for_surrogate(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_unicode"
    assert error["param"] == field
    assert f"'{field}'" in error["message"]
    assert "lone UTF-16 surrogate" in error["message"]
    assert "valid UTF-8" in error["message"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_hostile_text_is_answered_on_one_connection(http: httpx.Client, route: str) -> None:
    path, body, field, answer = ROUTES[route]
    connection = _connection(http.get("/v1/models"))
    for name, text in {**VALID, **SURROGATES}.items():
        if name in VALID:
            response = _post(http, path, _utf8(body(text)))
            assert response.status_code == 200, (name, response.text[:300])
            assert answer in response.text, (name, response.text[:300])
        else:
            response = _post(http, path, _escaped(body(text)))
            _assert_refused_for_surrogate(response, field)
        assert _connection(response) == connection, f"{name}: the connection was closed"
    follow_up = http.get("/v1/models")
    assert follow_up.status_code == 200
    assert _connection(follow_up) == connection


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "\ud800", "messages": [{"role": "user", "content": "hi"}]}, "model"),
        (
            {
                "model": "smollm2",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "fine"},
                            {"type": "text", "text": "not \udfff fine"},
                        ],
                    }
                ],
            },
            "messages[0].content[1].text",
        ),
        (
            {
                "model": "smollm2",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hi", "name": "a\ud83d"},
                ],
            },
            "messages[1].name",
        ),
        (_chat("smollm2", user="\ud800")("hi"), "user"),
        (_chat("smollm2", stop=["end", "\ud800"])("hi"), "stop[1]"),
        (_chat("smollm2", metadata={"note": "\ud800"})("hi"), "metadata.note"),
        (
            _chat(
                "smollm2",
                tools=[{"type": "function", "function": {"name": "f", "description": "\ud800"}}],
            )("hi"),
            "tools[0].function.description",
        ),
        (_chat("smollm2", **{"x\ud800": 1})("hi"), "x\\ud800"),
    ],
    ids=["model", "content-part", "name", "user", "stop", "extra-field", "tool", "field-name"],
)
def test_a_lone_surrogate_is_refused_naming_its_field(
    http: httpx.Client, body: Body, field: str
) -> None:
    connection = _connection(http.get("/v1/models"))
    response = _post(http, "/v1/chat/completions", _escaped(body))
    _assert_refused_for_surrogate(response, field)
    assert _connection(http.get("/v1/models")) == connection


def test_a_surrogate_in_cesu8_bytes_is_refused(http: httpx.Client) -> None:
    raw = _utf8(_chat("smollm2")("XX")).replace(b"XX", b"\xed\xa0\x80")  # U+D800 as bytes
    connection = _connection(http.get("/v1/models"))
    response = _post(http, "/v1/chat/completions", raw)
    _assert_refused_for_surrogate(response, "messages[0].content")
    assert _connection(http.get("/v1/models")) == connection


def test_a_body_that_is_not_utf8_is_refused(http: httpx.Client) -> None:
    raw = _utf8(_chat("smollm2")("XX"))
    at = raw.index(b"XX")
    response = _post(http, "/v1/chat/completions", raw.replace(b"XX", b"\xff\xfe"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_utf8"
    assert f"byte {at}" in error["message"] and "valid UTF-8" in error["message"]


def test_valid_hostile_text_is_cached_and_accounted_and_a_refusal_is_not(
    gateway: GatewayProcess,
) -> None:
    key = str(gateway.create_key("hostile-text")["api_key"])
    text = "".join(VALID.values())
    cached = _chat("smollm2", max_tokens=4, temperature=0)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=60) as http:
        refused = _post(http, "/v1/chat/completions", _escaped(cached(SURROGATES["high"])))
        _assert_refused_for_surrogate(refused, "messages[0].content")
        first = _post(http, "/v1/chat/completions", _utf8(cached(text)))
        second = _post(http, "/v1/chat/completions", _utf8(cached(text)))
        # The same words without the invisible characters are another request.
        visible = _post(http, "/v1/chat/completions", _utf8(cached("")))
        assert [r.status_code for r in (first, second, visible)] == [200, 200, 200]
        assert first.headers["x-edgeroute-cache"] == "miss"
        assert second.headers["x-edgeroute-cache"] == "hit"
        assert second.json()["choices"] == first.json()["choices"]
        assert visible.headers["x-edgeroute-cache"] == "miss"
        deadline = time.monotonic() + 3  # buffered answers are accounted just after
        while True:
            total = http.get("/v1/usage").json()["total"] or {}
            if total.get("requests") == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert total["requests"] == 3  # the refused request did no work, and is not billed
    assert total["errors"] == 0
    assert total["cache_hits"] == 1
    assert total["prompt_tokens"] > 0


USAGE_PARAMETERS = {
    "start": ("2026-01-01", "2026-02-01"),
    "end": ("2026-12-01", "2026-12-02"),
    "group_by": ("model", "day"),
    "tenant": ("acceptance", "acceptance"),
}


@pytest.mark.parametrize("name", USAGE_PARAMETERS)
def test_a_repeated_usage_parameter_is_refused(http: httpx.Client, name: str) -> None:
    once, again = USAGE_PARAMETERS[name]
    assert http.get("/v1/usage", params={name: once}).status_code == 200
    response = http.get("/v1/usage", params=[(name, once), (name, again)])
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": f"The query parameter '{name}' is given more than once. Give it once.",
        "type": "invalid_request_error",
        "param": name,
        "code": "repeated_parameter",
    }
    assert http.get("/v1/usage", params={name: once}).status_code == 200


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/smollm2-135m", "/healthz"])
def test_a_repeated_parameter_is_refused_where_none_is_read(http: httpx.Client, path: str) -> None:
    response = http.get(path, params=[("x", "1"), ("x", "2")])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x"
