"""Errors are classes, never changed after construction, rendered in OpenAI's error shape."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from starlette.background import BackgroundTask

import edgeroute
from edgeroute import errors
from edgeroute.api.errors import install_error_handlers
from edgeroute.errors import EdgerouteError
from tests.support.openai_sdk import OPENAI_ERROR_TYPES

PACKAGE = Path(edgeroute.__file__).parent
_FIXED = ("status_code", "error_type")


def _subclasses(cls: type[EdgerouteError]) -> list[type[EdgerouteError]]:
    found: list[type[EdgerouteError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


ALL = [EdgerouteError, *_subclasses(EdgerouteError)]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_status_type_and_code_come_from_the_class(cls: type[EdgerouteError]) -> None:
    if cls is errors.HTTPStatusError:
        error: EdgerouteError = errors.HTTPStatusError(418, "short and stout")
        assert error.status_code == 418
    else:
        error = cls("something failed")
        assert error.status_code == cls.status_code
    assert error.error_type == cls.error_type
    assert error.code == cls.default_code
    assert set(vars(error)) <= {"message", "param", "code", "headers", "status_code", "detail"}
    assert error.body() == {
        "error": {
            "message": error.message,
            "type": cls.error_type,
            "param": None,
            "code": cls.default_code,
        }
    }


@pytest.mark.parametrize(
    ("cls", "status", "error_type", "code"),
    [
        (errors.BudgetExceeded, 429, "insufficient_quota", "budget_exceeded"),
        (errors.RateLimited, 429, "rate_limit_error", "rate_limit_exceeded"),
        (errors.PaymentRequired, 402, "insufficient_quota", "cost_ceiling"),
        (errors.UnknownRoute, 404, "invalid_request_error", "unknown_route"),
        (errors.NotFound, 404, "invalid_request_error", "model_not_found"),
        (errors.MethodNotAllowed, 405, "invalid_request_error", "method_not_allowed"),
        (errors.InternalError, 500, "server_error", "internal_error"),
    ],
)
def test_each_answer_has_its_class(
    cls: type[EdgerouteError], status: int, error_type: str, code: str
) -> None:
    assert (cls.status_code, cls.error_type, cls.default_code) == (status, error_type, code)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_type_is_one_openai_uses(cls: type[EdgerouteError]) -> None:
    assert cls.error_type in OPENAI_ERROR_TYPES


def test_the_detail_goes_to_the_log_and_never_into_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = errors.UpstreamUnavailable(
        "Upstream for model 'medium-qwen' is unreachable.",
        detail="http://10.0.3.7:8000/v1: ConnectionRefusedError",
    )
    assert "10.0.3.7" not in str(error.body()) and "10.0.3.7" not in str(error)
    error.log_detail("req_1")
    assert [r.getMessage() for r in caplog.records] == [
        "request req_1 answered 503 upstream_unavailable: "
        "http://10.0.3.7:8000/v1: ConnectionRefusedError"
    ]


def test_a_budget_refusal_is_still_a_rate_limit() -> None:
    # 429 maps to the SDKs' RateLimitError; callers catching RateLimited keep working.
    assert issubclass(errors.BudgetExceeded, errors.RateLimited)


def _fixed_fields_set_outside_classes(source: str) -> list[int]:
    """Lines that assign ``.status_code`` or ``.error_type`` outside a class body, or
    change an error's headers."""
    tree = ast.parse(source)
    in_class = {
        id(node)
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef)
        for node in ast.walk(cls)
    }
    lines = []
    for node in ast.walk(tree):
        if id(node) in in_class:
            continue
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        lines += [
            part.lineno
            for target in targets
            for part in ast.walk(target)
            if isinstance(part, ast.Attribute) and part.attr in _FIXED
        ]
        lines += _error_headers_changed(node, targets)
    return lines


# What the code calls a caught or built error; their headers belong to the error too.
_ERROR_NAMES = {"exc", "error", "err"}


def _is_error_headers(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "headers"
        and isinstance(node.value, ast.Name)
        and node.value.id in _ERROR_NAMES
    )


def _error_headers_changed(node: ast.AST, targets: list[ast.expr]) -> list[int]:
    """``exc.headers[...] = ...`` or ``exc.headers.update(...)``-style calls."""
    lines = [
        t.lineno for t in targets if isinstance(t, ast.Subscript) and _is_error_headers(t.value)
    ]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"setdefault", "update", "pop", "clear", "__setitem__"}
        and _is_error_headers(node.func.value)
    ):
        lines.append(node.lineno)
    return lines


def test_the_scan_finds_errors_changed_after_construction() -> None:
    changed = (
        "error = RateLimited('x')\n"
        "error.error_type = 'insufficient_quota'\n"
        "error.status_code, error.error_type = 404, 'invalid_request_error'\n"
        "exc.headers.setdefault('x-request-id', rid)\n"
        "error.headers['Retry-After'] = '1'\n"
        "response.headers['x-edgeroute-model'] = 'small'\n"
        "class Fine(EdgerouteError):\n"
        "    def __init__(self, status_code: int) -> None:\n"
        "        self.status_code = status_code\n"
    )
    assert sorted(_fixed_fields_set_outside_classes(changed)) == [2, 3, 3, 4, 5]


def test_no_code_sets_an_errors_status_or_type_after_construction() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in _fixed_fields_set_outside_classes(path.read_text())
    ]
    assert not offenders, f"errors changed after construction at {offenders}"


def _client(raise_server_exceptions: bool = False) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail="I'm a teapot")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/boom-after")
    async def boom_after() -> JSONResponse:
        return JSONResponse({"ok": True}, background=BackgroundTask(_fail))

    @app.get("/boom-midway")
    async def boom_midway() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            yield b"first part"
            raise RuntimeError("boom midway")

        return StreamingResponse(parts())

    return TestClient(app, raise_server_exceptions=raise_server_exceptions)


async def _fail() -> None:
    raise RuntimeError("boom after the answer")


def test_an_unexpected_exception_reaches_the_server_only_when_an_answer_is_cut_off() -> None:
    """A server that sees the exception closes the keep-alive connection, and the
    client's next request on it is reset (TestClient re-raises what the server sees):
    right for an answer cut off midway, wrong when a whole answer could be sent."""
    client = _client(raise_server_exceptions=True)
    assert client.get("/boom").json()["error"]["code"] == "internal_error"
    after = client.get("/boom-after")  # the answer was complete: it stands
    assert after.status_code == 200 and after.json() == {"ok": True}
    with pytest.raises(RuntimeError, match="boom midway"):
        client.get("/boom-midway")


@pytest.mark.parametrize(
    ("method", "path", "status", "error_type", "code", "message"),
    [
        (
            "GET",
            "/nope",
            404,
            "invalid_request_error",
            "unknown_route",
            "No route GET /nope. The OpenAI-compatible routes live under /v1 "
            "(chat/completions, completions, embeddings, moderations, models).",
        ),
        (
            "POST",
            "/teapot",
            405,
            "invalid_request_error",
            "method_not_allowed",
            "POST is not allowed on /teapot.",
        ),
        ("GET", "/teapot", 418, "server_error", None, "I'm a teapot"),
    ],
    ids=["unknown-route", "method-not-allowed", "other-http-status"],
)
def test_framework_failures_keep_their_openai_shape(
    method: str, path: str, status: int, error_type: str, code: str | None, message: str
) -> None:
    response = _client().request(method, path)
    assert response.status_code == status
    assert response.json()["error"] == {
        "message": message,
        "type": error_type,
        "param": None,
        "code": code,
    }


def test_an_unexpected_exception_is_a_500_in_openai_shape() -> None:
    boom = _client().get("/boom")
    assert boom.status_code == 500
    assert boom.json()["error"]["type"] == "server_error"
    assert boom.json()["error"]["code"] == "internal_error"
    assert boom.json()["error"]["message"].startswith("edgeroute hit an internal error")
