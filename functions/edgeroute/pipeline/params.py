"""Check and fill sampling parameters against a model's declared ranges.

Each model says, per parameter, its allowed range, a default, and whether a
value outside the range is clamped into it or rejected with a 400 naming the range.

Invariant: what reaches a model's upstream is within that model's rules, for the first
target and every fallback alike (``execute`` applies the rules of the target it calls;
``accepts`` tells planning which fallbacks would refuse). The absolute caps every model
shares (a JSON integer, at most ``MAX_TOKENS_CAP`` ...) are the request schemas'
(``wire/schemas.py``); the rules here narrow them per model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edgeroute.config.registry import ModelSpec, ParameterRule
from edgeroute.errors import InvalidRequest

# What OpenAI documents; a model's own rules narrow these.
_API_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_INTEGER = {"max_tokens", "max_completion_tokens", "n", "best_of", "seed", "top_k"}
# A rule declared for the parameter on the right governs the one on the left too: they
# bound the same thing (max_completion_tokens is OpenAI's new name for max_tokens;
# best_of, like n, counts whole generations), so neither is a way around the other.
_SAME_LIMIT = {"max_completion_tokens": "max_tokens", "best_of": "n"}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _rules(model: ModelSpec) -> Iterator[tuple[str, ParameterRule]]:
    """Each parameter the model limits, with its rule, the governed names included."""
    yield from model.parameters.items()
    for name, governing in _SAME_LIMIT.items():
        rule = model.parameters.get(governing)
        if rule is not None and name not in model.parameters:
            yield name, rule


def _asked(payload: dict[str, Any], name: str) -> bool:
    """Whether the request sets ``name`` or a parameter of the same limit."""
    same = {name, *(n for n, governing in _SAME_LIMIT.items() if governing == name)}
    return any(payload.get(n) is not None for n in same)


def apply_parameter_rules(model: ModelSpec, payload: dict[str, Any]) -> dict[str, Any]:
    """Validate, clamp and default parameters in ``payload`` (modified and returned)."""
    for name, (low, high) in _API_RANGES.items():
        value = payload.get(name)
        if value is not None and not low <= value <= high:
            raise InvalidRequest(
                f"Invalid '{name}': {_fmt(value)} is outside the allowed range "
                f"[{_fmt(low)}, {_fmt(high)}]. Send a value between {_fmt(low)} and {_fmt(high)}.",
                param=name,
                code="invalid_value",
            )
    for name, rule in _rules(model):
        value = payload.get(name)
        if value is None:
            if rule.default is not None and name in model.parameters and not _asked(payload, name):
                payload[name] = int(rule.default) if name in _INTEGER else rule.default
            continue
        low = rule.min if rule.min is not None else value
        high = rule.max if rule.max is not None else value
        if low <= value <= high:
            continue
        if rule.rule == "clamp":
            clamped = rule.clamp(value)
            payload[name] = int(clamped) if name in _INTEGER else clamped
            continue
        span = f"[{_fmt(low)}, {_fmt(high)}]"
        raise InvalidRequest(
            f"Invalid '{name}': {_fmt(value)} is outside the range {span} that model "
            f"'{model.name}' accepts. Send a value between {_fmt(low)} and {_fmt(high)}.",
            param=name,
            code="invalid_value",
        )
    max_out = model.max_output_tokens
    if max_out is not None:
        for name in ("max_tokens", "max_completion_tokens"):
            if payload.get(name) is not None and payload[name] > max_out:
                raise InvalidRequest(
                    f"Invalid '{name}': {payload[name]} is more than model '{model.name}' "
                    f"can produce. Send at most {max_out}.",
                    param=name,
                    code="invalid_value",
                )
    return payload


def accepts(model: ModelSpec, payload: dict[str, Any]) -> bool:
    """Whether ``model``'s rules take this request (clamping where they clamp)."""
    try:
        apply_parameter_rules(model, dict(payload))
    except InvalidRequest:
        return False
    return True
