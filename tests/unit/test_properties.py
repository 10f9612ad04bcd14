"""Properties that hold for any input, checked by hypothesis: SSE payloads survive any
split into parts, every batch line yields a request or a named line error (never another
exception), any chat body is accepted or refused with a 400, and any value of any
EDGEROUTE_* variable is taken or refused by a ConfigError naming it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edgeroute.batch.jsonl import BatchLine, LineError, parse_line, validated_payload
from edgeroute.errors import ConfigError, EdgerouteError
from edgeroute.settings import Settings, variables
from edgeroute.types import Kind
from edgeroute.wire.sse import SSELines, encode_event
from edgeroute.wire.validation import validation_error

JSON_LEAF = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
EVENTS = st.lists(st.dictionaries(st.text(max_size=8), JSON, max_size=4), max_size=6)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(events=EVENTS, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_sse_payloads_survive_any_split(events: list[dict[str, Any]], cuts: list[int]) -> None:
    stream = b"".join(encode_event(e) for e in events)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    parts = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    reader = SSELines()
    payloads = [p for part in parts for p in reader.feed(part)] + reader.flush()
    assert [json.loads(p) for p in payloads] == events


@SETTINGS
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_batch_line_is_a_request_or_a_named_line_error(raw: bytes) -> None:
    try:
        line = parse_line(1, raw)
    except LineError as exc:
        assert exc.code and exc.message.startswith("line 1")
        return
    assert isinstance(line, BatchLine)


BODIES = st.fixed_dictionaries(
    {
        "model": st.text(max_size=12),
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant", "system", "x"]), "content": JSON}
            ),
            max_size=3,
        ),
    },
    optional={"max_tokens": JSON, "stream": JSON, "temperature": JSON, "n": JSON},
)


@SETTINGS
@given(body=BODIES)
def test_any_chat_body_is_accepted_or_refused_naming_a_field(body: dict[str, Any]) -> None:
    try:
        validated_payload(BatchLine(1, "c", Kind.CHAT, body))
    except EdgerouteError as exc:
        assert exc.status_code == 400 and exc.message
        assert exc.param is None or isinstance(exc.param, str)
    except ValidationError as exc:  # pragma: no cover - would be a bug: never raw
        raise AssertionError(validation_error(exc).message) from exc


VARIABLES = sorted(name for name, _ in variables())


@SETTINGS
@given(
    name=st.sampled_from(VARIABLES),
    value=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=30,
    ),
)
def test_any_variable_value_is_taken_or_refused_by_name(name: str, value: str) -> None:
    with pytest.MonkeyPatch.context() as env:
        for other in VARIABLES:
            env.delenv(other, raising=False)
        env.setenv(name, value)
        try:
            Settings.from_env()
        except ConfigError as exc:
            assert name in str(exc) or "EDGEROUTE_" in str(exc), str(exc)
