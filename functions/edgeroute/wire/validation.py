"""A request body that fails its schema becomes one ``InvalidRequest`` naming the field
and the fix, the same for an HTTP request and a batch line.

Takes anything with pydantic's ``errors()`` (FastAPI's ``RequestValidationError`` or
pydantic's own ``ValidationError``), so this module needs neither FastAPI nor the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from edgeroute.errors import InvalidRequest
from edgeroute.wire.text import INVALID_UNICODE

# A value of the wrong JSON type, said as what to send instead (pydantic says "Input
# should be a valid boolean", which does not tell a caller that "true" is not true).
_EXPECTED = {
    "bool_type": "it must be a JSON boolean, true or false (not a string or a number)",
    "int_type": "it must be a JSON integer (a whole number, not a string or a boolean)",
    "float_type": "it must be a JSON number (not a string or a boolean)",
    "finite_number": "it must be a finite number",
}


class HasErrors(Protocol):
    def errors(self) -> Sequence[Any]: ...


_WHERE = ("query", "path")  # FastAPI's location labels; the caller knows the name alone


def _field(loc: tuple[Any, ...]) -> str:
    if loc and loc[0] in _WHERE:
        loc = loc[1:]
    parts = [p for p in loc if p != "body"]
    # Drop pydantic's union-branch labels (e.g. 'str', 'list[...]') that mean nothing to a user.
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"}):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text or "body"


def _most_telling(errors: list[Any]) -> dict[str, Any]:
    """One error to report. A union field (``input: str | list[str]``) fails once per
    branch; the deepest complaint that is not a plain type mismatch says the most."""
    if not errors:
        return {"loc": ("body",), "msg": "invalid", "type": ""}
    field = tuple(p for p in errors[0].get("loc", ()) if p != "body")[:1]
    same = [e for e in errors if tuple(p for p in e.get("loc", ()) if p != "body")[:1] == field]

    def weight(error: dict[str, Any]) -> tuple[int, bool]:
        kind = str(error.get("type", ""))
        return len(error.get("loc", ())), not (kind.endswith("_type") or kind.endswith("_parsing"))

    return max(same, key=weight)


def validation_error(exc: HasErrors) -> InvalidRequest:
    errors = list(exc.errors())
    first = _most_telling(errors)
    kind = first.get("type", "")
    field = _field(tuple(first.get("loc", ())))
    if kind == "json_invalid":
        return InvalidRequest(
            "The request body is not valid JSON. Send a JSON object with "
            "'Content-Type: application/json'.",
            code="invalid_json",
        )
    if kind == INVALID_UNICODE:  # raised before any field, so it is the only error
        context = first["ctx"]
        return InvalidRequest(context["message"], param=context["field"], code=INVALID_UNICODE)
    if kind == "missing":
        return InvalidRequest(
            f"Missing required parameter '{field}'. Add it to the request body.",
            param=field,
            code="missing_required_parameter",
        )
    if field == "body" or kind == "model_attributes_type":
        return InvalidRequest(
            "The request body must be a JSON object. See the OpenAI API reference for "
            "this route's fields.",
            param=None,
        )
    message = _EXPECTED.get(kind) or str(first.get("msg", "invalid value"))
    got = first.get("input")
    shown = repr(got)[:60] if got is not None and not isinstance(got, dict | list) else None
    extra = f" (got {shown})" if shown else ""
    more = f" {len(errors) - 1} more field(s) are invalid too." if len(errors) > 1 else ""
    return InvalidRequest(
        f"Invalid value for '{field}'{extra}: {message}. Fix '{field}' and retry.{more}",
        param=field,
        code="invalid_value",
    )
