"""A scripted upstream in the test process: each model's calls follow a script, in order.

It implements ``edgeroute.upstreams.base.Upstream`` as the real adapters do: errors
are ``edgeroute.errors`` classes, and a stream's first ``__anext__`` returns only
once the upstream "accepted", so failures before the first chunk surface there.
Every call is recorded (model, kind, payload, whether a stream was closed), so tests
can assert on the attempts the gateway made.

A script is a list of steps; the last step repeats, so ``script("m", Fail(e))`` is a
model that always fails. A model without a script answers every call. Answers are
chat or legacy completions, the shapes the retry and settlement paths see.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field

import httpx

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import EdgerouteError
from edgeroute.types import Chunks, Json, Kind, Usage
from edgeroute.upstreams.http import map_status_error
from edgeroute.wire.chunks import stream_ended_early

DEFAULT_TEXT = "Hello from the scripted upstream"
DEFAULT_USAGE = Usage(prompt_tokens=7, completion_tokens=5)


@dataclass(frozen=True)
class Answer:
    """Answer: a body when buffered, chunks (one per word, then usage) when streamed.
    ``usage=None`` answers without reporting usage, so the gateway must count."""

    text: str = DEFAULT_TEXT
    usage: Usage | None = DEFAULT_USAGE
    finish: str = "stop"
    # Chat tool calls to make, as {"id", "name", "arguments"} (arguments: JSON text);
    # streamed as OpenAI streams them: the id and name first, the arguments in two pieces.
    tool_calls: tuple[Json, ...] = ()


@dataclass(frozen=True)
class Fail:
    """Fail before the first byte with this error (a fresh copy each time)."""

    error: Exception


@dataclass(frozen=True)
class Status:
    """Answer with this HTTP status, mapped to an error exactly as the HTTP adapters
    map a real upstream's answer (``upstreams.http.map_status_error``)."""

    status: int
    message: str = "scripted failure"
    retry_after: str | None = None


@dataclass(frozen=True)
class Hang:
    """Send ``after_chunks`` chunks (streams only), then wait until cancelled."""

    after_chunks: int = 0


@dataclass(frozen=True)
class Cut:
    """Stream ``after_chunks`` chunks, then end early as the adapters report it."""

    after_chunks: int


Step = Answer | Fail | Status | Hang | Cut


@dataclass
class UpstreamCall:
    model: str
    kind: Kind
    payload: Json
    stream: bool
    closed: bool = False  # a stream's iterator was closed (finished, failed or hung up)


@dataclass
class ScriptedUpstream:
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    calls: list[UpstreamCall] = field(default_factory=list)
    _taken: dict[str, int] = field(default_factory=dict)

    def script(self, model: str, *steps: Step) -> None:
        self.scripts[model] = list(steps)
        self._taken[model] = 0

    def attempts(self) -> list[str]:
        """The models called, in order."""
        return [c.model for c in self.calls]

    def _step(self, model: ModelSpec) -> Step:
        steps = self.scripts.get(model.name) or [Answer()]
        taken = self._taken.get(model.name, 0)
        self._taken[model.name] = taken + 1
        return steps[min(taken, len(steps) - 1)]

    def _begin(self, kind: Kind, payload: Json, model: ModelSpec, stream: bool) -> UpstreamCall:
        call = UpstreamCall(model.name, kind, copy.deepcopy(payload), stream)
        self.calls.append(call)
        return call

    async def send(self, kind: Kind, payload: Json, model: ModelSpec) -> Json:
        self._begin(kind, payload, model, stream=False)
        step = self._step(model)
        await asyncio.sleep(0)  # an upstream call yields to the loop, as real ones do
        if isinstance(step, Answer):
            return _body(kind, model, step)
        if isinstance(step, Hang):
            await asyncio.Event().wait()  # until the gateway's deadline cancels the call
        if isinstance(step, Fail | Status):
            raise _error(step, model)
        raise stream_ended_early(f"Upstream for model '{model.name}'", model.endpoint)

    async def stream(self, kind: Kind, payload: Json, model: ModelSpec) -> Chunks:
        call = self._begin(kind, payload, model, stream=True)
        step = self._step(model)
        try:
            await asyncio.sleep(0)
            if isinstance(step, Fail | Status):
                raise _error(step, model)
            answer = step if isinstance(step, Answer) else Answer()
            chunks = _chunks(kind, model, answer)
            if isinstance(step, Hang | Cut):
                chunks = chunks[: step.after_chunks]
            for chunk in chunks:
                yield chunk
                await asyncio.sleep(0)
            if isinstance(step, Hang):
                await asyncio.Event().wait()
            if isinstance(step, Cut):
                raise stream_ended_early(f"Upstream for model '{model.name}'", model.endpoint)
        finally:
            call.closed = True


def _error(step: Fail | Status, model: ModelSpec) -> Exception:
    if isinstance(step, Status):
        headers = httpx.Headers({"retry-after": step.retry_after} if step.retry_after else {})
        body = json.dumps({"error": {"message": step.message}}).encode()
        return map_status_error(step.status, body, headers, model)
    error = copy.copy(step.error)  # the gateway adds headers to the errors it raises
    if isinstance(error, EdgerouteError):
        error.headers = dict(error.headers)
    return error


def _body(kind: Kind, model: ModelSpec, answer: Answer) -> Json:
    if kind is Kind.CHAT:
        message: Json = {"role": "assistant", "content": answer.text or None}
        if answer.tool_calls:
            message["tool_calls"] = [_tool_call(c) for c in answer.tool_calls]
        choice: Json = {"index": 0, "message": message, "finish_reason": answer.finish}
    else:
        choice = {"index": 0, "text": answer.text, "finish_reason": answer.finish, "logprobs": None}
    body: Json = {
        "id": "cmpl-scripted",
        "object": "chat.completion" if kind is Kind.CHAT else "text_completion",
        "created": 1,
        "model": model.wire_name,
        "choices": [choice],
    }
    if answer.usage is not None:
        body["usage"] = answer.usage.to_openai()
    return body


def _tool_call(call: Json) -> Json:
    function = {"name": call["name"], "arguments": call["arguments"]}
    return {"id": call["id"], "type": "function", "function": function}


def _tool_call_deltas(calls: tuple[Json, ...]) -> list[Json]:
    deltas: list[Json] = []
    for index, call in enumerate(calls):
        half = len(call["arguments"]) // 2
        first = {"name": call["name"], "arguments": call["arguments"][:half]}
        head = {"index": index, "id": call["id"], "type": "function", "function": first}
        deltas.append({"tool_calls": [head]})
        rest = {"arguments": call["arguments"][half:]}
        deltas.append({"tool_calls": [{"index": index, "function": rest}]})
    return deltas


def _chunks(kind: Kind, model: ModelSpec, answer: Answer) -> list[Json]:
    words = answer.text.split(" ") if answer.text else []
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]

    def chunk(text: str, finish: str | None = None, delta: Json | None = None) -> Json:
        choice: Json = (
            {"index": 0, "delta": delta or {"content": text}, "finish_reason": finish}
            if kind is Kind.CHAT
            else {"index": 0, "text": text, "finish_reason": finish}
        )
        return {
            "id": "chunk-scripted",
            "object": "chat.completion.chunk" if kind is Kind.CHAT else "text_completion",
            "created": 1,
            "model": model.wire_name,
            "choices": [choice],
        }

    out = [chunk(p) for p in pieces]
    out += [chunk("", delta=d) for d in _tool_call_deltas(answer.tool_calls)]
    out.append(chunk("", answer.finish))
    if answer.usage is not None:
        out.append({**chunk(""), "choices": [], "usage": answer.usage.to_openai()})
    return out
