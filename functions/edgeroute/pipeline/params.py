"""Check and fill sampling parameters against a model's declared ranges.

Each model says, per parameter, its allowed range, a default, and whether a
value outside the range is clamped into it or rejected with a 400 naming the range.
"""

from __future__ import annotations

from typing import Any

from edgeroute.config.registry import ModelSpec
from edgeroute.errors import InvalidRequest

# What OpenAI documents; a model's own rules narrow these.
_API_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_INTEGER = {"max_tokens", "max_completion_tokens", "n", "seed", "top_k"}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


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
    for name, rule in model.parameters.items():
        value = payload.get(name)
        if value is None:
            if rule.default is not None:
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
