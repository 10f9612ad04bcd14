"""Batch files checked before they run: which files are not JSONL, how lines parse
(deterministically, so a resumed job sees the same lines), and the quota share of
batch lines."""

from __future__ import annotations

import json
from typing import Any

from edgeroute.batch.answer import batch_share, parse_all
from edgeroute.batch.jsonl import BatchLine, LineError, not_jsonl
from edgeroute.store.base import ApiKey, KeyLimits
from edgeroute.types import Json, Kind

CHAT = "/v1/chat/completions"


def _line(custom_id: str, url: str = CHAT) -> bytes:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({"custom_id": custom_id, "url": url, "body": body}).encode()


def test_files_that_are_not_jsonl_are_named_for_what_they_are() -> None:
    assert "binary" in str(not_jsonl(b"\x00\x01"))
    assert "UTF-8" in str(not_jsonl(b"\xff\xfe{"))
    assert "JSON array" in str(not_jsonl(b' [{"custom_id": "a"}]'))
    assert "empty" in str(not_jsonl(b"\n \n"))
    assert "no line" in str(not_jsonl(b"hello\nworld\n"))
    assert not_jsonl(b"broken\n" + _line("a")) is None  # one bad line is that line's error


def test_lines_parse_the_same_every_time_with_each_mistake_named() -> None:
    lines = [
        (1, _line("a")),
        (2, _line("b", "/v1/embeddings")),
        (3, _line("a")),
        (4, _line("big") + b" " * 200),
        (5, b"{nope"),
    ]
    first = parse_all(lines, CHAT, 150)
    again = parse_all(lines, CHAT, 150)
    codes = [p.code if isinstance(p, LineError) else "ok" for p in first]
    assert codes == ["ok", "invalid_url", "duplicate_custom_id", "line_too_large", "invalid_json"]
    assert [p.custom_id for p in first] == ["a", "b", "a", "big", None]
    assert [type(p) for p in again] == [type(p) for p in first]
    assert [p.code for p in parse_all(lines[1:2], None, 150) if isinstance(p, LineError)] == []


def test_batch_lines_get_a_share_of_the_per_minute_limits() -> None:
    key = ApiKey(
        "k",
        "h",
        "n",
        "t",
        0.0,
        limits=KeyLimits(rpm=100, tpm=1000, max_concurrent=1, tokens_per_day=5000),
    )
    shared = batch_share(key, 30).limits
    assert (shared.rpm, shared.tpm, shared.max_concurrent) == (30, 300, 1)
    assert shared.tokens_per_day == 5000  # a total: shared as it is
    assert batch_share(ApiKey("k", "h", "n", "t", 0.0), 30).limits.rpm is None


async def test_lines_toward_a_model_keep_to_its_batch_concurrency() -> None:
    import asyncio
    from types import SimpleNamespace

    from edgeroute.batch.answer import LineAnswerer
    from edgeroute.config.registry import ModelSpec

    spec = ModelSpec(name="m", tier="small", endpoint="http://u/v1", batch_concurrency=2)
    gateway: Any = SimpleNamespace(
        registry=SimpleNamespace(get=lambda n: spec if n == "m" else None)
    )
    answerer = LineAnswerer(gateway, concurrency=8)
    flying: dict[str, int] = {"m": 0, "other": 0}
    most: dict[str, int] = {"m": 0, "other": 0}

    async def answer(principal: ApiKey, line: BatchLine, keep: object = None) -> Json:
        model = line.body["model"]
        flying[model] += 1
        most[model] = max(most[model], flying[model])
        await asyncio.sleep(0.01)
        flying[model] -= 1
        return {}

    answerer.answer = answer  # type: ignore[method-assign]
    lines: list[BatchLine | LineError] = [
        BatchLine(i, f"c{i}", Kind.CHAT, {"model": "m" if i % 2 else "other"}) for i in range(12)
    ]
    await answerer.answer_all(ApiKey("k", "h", "n", "t", 0.0), lines)
    assert most == {"m": 2, "other": 6}
