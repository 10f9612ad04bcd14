"""The SageMaker adapter against botocore's Stubber, with the service's real shapes.

Stubber validates a stubbed response against the operation's output shape, where an
event stream member must be a dict (one event), so a real iterable stream cannot pass.
Streams are therefore stubbed in two steps: each event is validated against the
stream's union shape with the same validator Stubber uses, encoded into AWS event-stream
binary frames, and, once Stubber accepted the response, its stream member is replaced
by a real ``botocore.eventstream.EventStream`` over those bytes. Parsing, exceptions
inside the stream (``EventStreamError``) and ``close()`` are then botocore's own.
The helpers here are shared with the Bedrock tests.
"""

from __future__ import annotations

import asyncio
import binascii
import io
import json
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore import exceptions as bx
from botocore.eventstream import EventStream
from botocore.parsers import EventStreamJSONParser
from botocore.response import StreamingBody
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from edgeroute.config.registry import ModelSpec, Protocol
from edgeroute.errors import (
    ContextLengthExceeded,
    EdgerouteError,
    InvalidRequest,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from edgeroute.types import Kind
from edgeroute.upstreams import adapter_for, aws
from edgeroute.upstreams.aws import aws_client
from edgeroute.upstreams.sagemaker import SageMakerEndpoint

MODEL = ModelSpec(
    name="llama-sm",
    protocol=Protocol.SAGEMAKER,
    upstream_model="llama-endpoint",
    tier="medium",
)
CHAT = {"model": "llama-endpoint", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}
BODY = json.dumps({"messages": CHAT["messages"], "max_tokens": 5}).encode()  # without "model"


# ---- helpers shared with test_bedrock_adapter.py ------------------------------------------


def use_dummy_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setattr(aws, "_clients", {})
    monkeypatch.setattr(aws, "_session", None)


def body(data: bytes) -> StreamingBody:
    """A buffered response body as botocore hands it over."""
    return StreamingBody(io.BytesIO(data), len(data))


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack("B", len(raw_name))
        + raw_name
        + b"\x07"  # header value type: string
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def encode_event(event: dict[str, Any], union: Any) -> bytes:
    """One AWS event-stream frame, as the service would send the event (or exception)."""
    ((member, value),) = event.items()
    shape = union.members[member]
    if shape.metadata.get("exception"):
        headers = {":message-type": "exception", ":exception-type": member}
        payload: list[str] = []
        body = json.dumps(value).encode()
    else:
        headers = {":message-type": "event", ":event-type": member}
        payload = [n for n, m in shape.members.items() if m.serialization.get("eventpayload")]
        body = value[payload[0]] if payload else json.dumps(value).encode()
    headers[":content-type"] = "application/octet-stream" if payload else "application/json"
    encoded_headers = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded_headers) + len(body) + 4, len(encoded_headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + encoded_headers + body
    return message + struct.pack(">I", binascii.crc32(message))


class RawStream:
    """The HTTP body under an EventStream: yields bytes in pieces that cut frames anywhere.

    With ``hold``, it blocks after the bytes like a live connection, until ``close()``,
    and then fails the way a closed socket does.
    """

    def __init__(self, data: bytes, piece: int = 7, hold: bool = False) -> None:
        self.pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
        self.hold = hold
        self.closed = threading.Event()
        self.finished = threading.Event()

    def stream(self) -> Iterator[bytes]:
        try:
            yield from self.pieces
            if self.hold:
                self.closed.wait(10)
                raise bx.ResponseStreamingError(error="connection closed")
        finally:
            self.finished.set()

    def close(self) -> None:
        self.closed.set()


def add_stream(
    stubber: Stubber,
    method: str,
    member: str,
    events: list[dict[str, Any]],
    expected: dict[str, Any] | None = None,
    raw: dict[str, Any] | None = None,
    **fields: Any,
) -> RawStream:
    client = stubber.client
    operation = client.meta.method_to_api_mapping[method]
    union = client.meta.service_model.operation_model(operation).output_shape.members[member]
    for event in events:
        validate_parameters(event, union)  # what Stubber would check, event by event
    response: dict[str, Any] = {member: events[0], **fields}
    stubber.add_response(method, response, expected)
    stream = RawStream(b"".join(encode_event(e, union) for e in events), **(raw or {}))
    response[member] = EventStream(stream, union, EventStreamJSONParser(), operation)
    return stream


async def workers_gone(seconds: float = 5.0) -> bool:
    """Whether every stream worker thread has exited (they are named by the adapter)."""
    for _ in range(int(seconds * 20)):
        if not any(t.name == "edgeroute-aws-stream" for t in threading.enumerate()):
            return True
        await asyncio.sleep(0.05)
    return False


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    use_dummy_aws(monkeypatch)
    with Stubber(aws_client("sagemaker-runtime", MODEL)) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _parts(*pieces: bytes) -> list[dict[str, Any]]:
    return [{"PayloadPart": {"Bytes": p}} for p in pieces]


STREAM_EXPECTED = {
    "EndpointName": "llama-endpoint",
    "Body": json.dumps({**json.loads(BODY), "stream": True}).encode(),
    "ContentType": "application/json",
    "Accept": "text/event-stream",
}


def _sse(*chunks: dict[str, Any]) -> bytes:
    events = (json.dumps(c, ensure_ascii=False).encode() for c in chunks)
    return b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def _delta(text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


# ---- buffered -----------------------------------------------------------------------------


async def test_send_posts_the_openai_body_without_model(stub: Stubber) -> None:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    stub.add_response(
        "invoke_endpoint",
        {"Body": body(json.dumps(answer).encode()), "ContentType": "application/json"},
        {
            "EndpointName": "llama-endpoint",
            "Body": BODY,
            "ContentType": "application/json",
            "Accept": "application/json",
        },
    )
    assert await SageMakerEndpoint().send(Kind.CHAT, CHAT, MODEL) == answer


async def test_an_inference_component_is_named_on_every_call(stub: Stubber) -> None:
    component = MODEL.model_copy(update={"inference_component": "llama-ic-1"})
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]}
    stub.add_response(
        "invoke_endpoint",
        {"Body": body(json.dumps(answer).encode())},
        {
            "EndpointName": "llama-endpoint",
            "InferenceComponentName": "llama-ic-1",
            "Body": BODY,
            "ContentType": "application/json",
            "Accept": "application/json",
        },
    )
    assert await SageMakerEndpoint().send(Kind.CHAT, CHAT, component) == answer
    expected = {**STREAM_EXPECTED, "InferenceComponentName": "llama-ic-1"}
    add_stream(
        stub,
        "invoke_endpoint_with_response_stream",
        "Body",
        _parts(_sse(_delta("Hi", "stop"))),
        expected,
    )
    chunks = [c async for c in SageMakerEndpoint().stream(Kind.CHAT, CHAT, component)]
    assert chunks[0]["choices"][0]["delta"]["content"] == "Hi"


async def test_a_missing_inference_component_is_a_registry_fix(stub: Stubber) -> None:
    component = MODEL.model_copy(update={"inference_component": "gone"})
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message="Inference Component Name gone not found.",
        http_status_code=400,
    )
    with pytest.raises(UpstreamError, match="configuration for it is wrong") as caught:
        await SageMakerEndpoint().send(Kind.CHAT, CHAT, component)
    detail = caught.value.detail or ""
    assert "inference component 'gone' on SageMaker endpoint 'llama-endpoint'" in detail
    assert "'inference_component'" in detail


async def test_send_names_the_fix_when_the_container_is_not_openai(stub: Stubber) -> None:
    stub.add_response("invoke_endpoint", {"Body": body(b'[{"generated_text": "Hello"}]')})
    with pytest.raises(UpstreamError, match="not an OpenAI chat response") as caught:
        await SageMakerEndpoint().send(Kind.CHAT, CHAT, MODEL)
    assert caught.value.code == "upstream_malformed"
    assert caught.value.detail is not None and "speaks the OpenAI API" in caught.value.detail


# ---- streaming ----------------------------------------------------------------------------


async def test_stream_reassembles_sse_lines_split_across_parts(stub: Stubber) -> None:
    usage = {
        "id": "chatcmpl-1",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    sse = _sse(_delta("Grüß"), _delta(" dich", "stop"), usage)
    # Cut inside "data:", inside the two bytes of "ü", and just before a line's "\n".
    cuts = [0, 3, sse.index("ü".encode()) + 1, sse.index(b"\n"), sse.index(b"data:", 9) + 2]
    pieces = [sse[a:b] for a, b in zip(cuts, [*cuts[1:], len(sse)], strict=True)]
    add_stream(
        stub, "invoke_endpoint_with_response_stream", "Body", _parts(*pieces), STREAM_EXPECTED
    )
    chunks = [c async for c in SageMakerEndpoint().stream(Kind.CHAT, CHAT, MODEL)]
    assert [c["choices"][0]["delta"]["content"] for c in chunks[:2]] == ["Grüß", " dich"]
    assert chunks[1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[2]["usage"]["completion_tokens"] == 2


async def test_stream_without_finish_is_truncated(stub: Stubber) -> None:
    add_stream(
        stub, "invoke_endpoint_with_response_stream", "Body", _parts(_sse(_delta("Hi"))[:-14])
    )
    stream = SageMakerEndpoint().stream(Kind.CHAT, CHAT, MODEL)
    assert (await anext(stream))["choices"][0]["delta"]["content"] == "Hi"
    with pytest.raises(UpstreamError) as caught:
        await anext(stream)
    assert caught.value.code == "upstream_truncated"


async def test_model_stream_error_mid_stream_raises_upstream_error(stub: Stubber) -> None:
    events = [
        *_parts(b"data: " + json.dumps(_delta("Hi")).encode() + b"\n\n"),
        {"ModelStreamError": {"Message": "CUDA out of memory", "ErrorCode": "ModelError"}},
    ]
    add_stream(stub, "invoke_endpoint_with_response_stream", "Body", events)
    stream = SageMakerEndpoint().stream(Kind.CHAT, CHAT, MODEL)
    await anext(stream)
    with pytest.raises(UpstreamError, match="failed mid-stream") as caught:
        await anext(stream)
    assert caught.value.code == "upstream_stream_error"
    assert caught.value.detail is not None and "CUDA out of memory" in caught.value.detail


async def test_closing_the_stream_early_closes_the_botocore_stream(stub: Stubber) -> None:
    raw = add_stream(
        stub,
        "invoke_endpoint_with_response_stream",
        "Body",
        _parts(b"data: " + json.dumps(_delta("Hi")).encode() + b"\n\n"),
        raw={"hold": True},
    )
    stream = SageMakerEndpoint().stream(Kind.CHAT, CHAT, MODEL)
    await anext(stream)
    await stream.aclose()  # as the gateway on a disconnect
    assert raw.closed.is_set()
    assert await asyncio.to_thread(raw.finished.wait, 5)  # the blocked read was released
    assert await workers_gone()


# ---- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "fields", "expected", "said", "logged"),
    [
        ("ModelError", 424, {"OriginalStatusCode": 400, "OriginalMessage": "bad temperature"},
         InvalidRequest, "bad temperature", "answered 400"),
        ("ModelError", 424, {"OriginalStatusCode": 400, "OriginalMessage": "exceeds context"},
         ContextLengthExceeded, "Shorten 'messages'", "exceeds context"),
        ("ModelError", 424, {"OriginalStatusCode": 500, "OriginalMessage": "boom",
                             "LogStreamArn": "arn:aws:logs:x"}, UpstreamError, "status 500",
         "arn:aws:logs:x"),
        ("ValidationError", 400, {}, UpstreamError, "configuration",
         "fix the model's 'upstream_model'"),
        ("ThrottlingException", 400, {}, UpstreamUnavailable, "Retry after 5 s",
         "ThrottlingException"),
        ("ServiceUnavailable", 503, {}, UpstreamUnavailable, "not ready", "ServiceUnavailable"),
        ("ModelNotReadyException", 429, {}, UpstreamUnavailable, "Retry after 30 s",
         "ModelNotReadyException"),
        ("AccessDeniedException", 403, {}, UpstreamAuthFailed, "credentials",
         "sagemaker:InvokeEndpoint"),
        ("InternalFailure", 500, {}, UpstreamError, "inside AWS", "InternalFailure"),
    ],
)  # fmt: skip
async def test_client_errors_map_to_edgeroute_errors(
    stub: Stubber,
    code: str,
    status: int,
    fields: dict[str, Any],
    expected: type[EdgerouteError],
    said: str,
    logged: str,
) -> None:
    message = (
        "Endpoint llama-endpoint of account 123456789012 not found."
        if code == "ValidationError"
        else "x"
    )
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        modeled_fields=fields,
    )
    with pytest.raises(expected, match=said) as caught:
        await SageMakerEndpoint().send(Kind.CHAT, CHAT, MODEL)
    assert type(caught.value) is expected
    # The caller reads the model's name; the endpoint's, the account and AWS's own words
    # about the upstream are the server log's.
    assert "'llama-sm'" in caught.value.message
    assert caught.value.detail is not None
    assert "llama-endpoint" in caught.value.detail and logged in caught.value.detail
    body = json.dumps(caught.value.body())
    assert "llama-endpoint" not in body and "123456789012" not in body
    if expected is UpstreamUnavailable:
        assert caught.value.headers["Retry-After"] in ("5", "30")
    if code == "AccessDeniedException":
        assert caught.value.code == "upstream_auth_failed"


async def test_stream_errors_before_the_first_chunk_surface_on_first_anext(stub: Stubber) -> None:
    stub.add_client_error(
        "invoke_endpoint_with_response_stream",
        service_error_code="ThrottlingException",
        http_status_code=400,
    )
    with pytest.raises(UpstreamUnavailable):
        await anext(SageMakerEndpoint().stream(Kind.CHAT, CHAT, MODEL))


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (bx.ReadTimeoutError(endpoint_url="https://x"), UpstreamTimeout, "read timeout"),
        (bx.ConnectTimeoutError(endpoint_url="https://x"), UpstreamTimeout, "within 3.0 s"),
        (bx.EndpointConnectionError(endpoint_url="https://x"), UpstreamUnavailable, "unreachable"),
    ],
)
async def test_transport_errors_map_and_are_not_retried_by_botocore(
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    expected: type[EdgerouteError],
    text: str,
) -> None:
    use_dummy_aws(monkeypatch)
    sent: list[str] = []

    def fail(request: Any, **kwargs: Any) -> None:
        sent.append(request.url)
        raise error

    aws_client("sagemaker-runtime", MODEL).meta.events.register("before-send", fail)
    with pytest.raises(expected, match=text):
        await SageMakerEndpoint().send(Kind.CHAT, CHAT, MODEL)
    assert sent == [
        "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/llama-endpoint/invocations"
    ]


# ---- registry and clients -----------------------------------------------------------------


def test_registry_needs_no_endpoint_and_the_table_has_the_adapter() -> None:
    assert isinstance(adapter_for(MODEL), SageMakerEndpoint)
    with pytest.raises(ValueError, match="needs an 'endpoint'"):
        ModelSpec(name="x", protocol=Protocol.OPENAI, tier="small")


def test_region_comes_from_the_endpoint_url_and_clients_are_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_dummy_aws(monkeypatch)
    eu = MODEL.model_copy(update={"endpoint": "https://runtime.sagemaker.eu-west-1.amazonaws.com"})
    client = aws_client("sagemaker-runtime", eu)
    assert client.meta.region_name == "eu-west-1"
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3.0, 60.0)
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert aws_client("sagemaker-runtime", eu) is client
    assert aws_client("sagemaker-runtime", MODEL).meta.region_name == "us-east-1"
    slow = eu.model_copy(update={"timeouts": eu.timeouts.model_copy(update={"read": 600.0})})
    assert aws_client("sagemaker-runtime", slow) is not client
