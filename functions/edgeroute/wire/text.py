"""Text in a request body is valid Unicode, checked once when the body is validated.

JSON may spell a lone UTF-16 surrogate (``"\\ud800"``), and so may CESU-8 bytes, which
Python's JSON decoder lets through; the str it makes cannot be encoded as UTF-8, so it
would fail later wherever text leaves the process (the upstream request, the tokenizer,
the answer). ``lone_surrogate`` finds the first such string, so the request is refused
with a 400 naming the field before any work. Every other code point (NUL, bidi
controls, zero-width characters, noncharacters) is valid text and passes.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticCustomError

INVALID_UNICODE = "invalid_unicode"  # the pydantic error type wire/validation.py renders


def _surrogate_at(text: str) -> int | None:
    """The index of the first lone surrogate in ``text``, if any."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")  # a few ms for megabytes, faster than a regex
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    # A key may hold the surrogate itself: the path shows it escaped, never raw.
    name = part.encode("utf-8", "backslashreplace").decode()
    return f"{path}.{name}" if path else name


def lone_surrogate(body: Any) -> PydanticCustomError | None:
    """The error for the first string or key in ``body`` holding a lone surrogate, with
    its path as pydantic's loc would print it (``messages[0].content``)."""
    containers: list[tuple[str, Any]] = [("", body)]
    while containers:
        path, value = containers.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        nested: list[tuple[str, Any]] = []
        for part, item in items:
            field = _join(path, part)
            if isinstance(part, str) and (at := _surrogate_at(part)) is not None:
                return _invalid(field, f"the name '{field}'", part, at)
            if isinstance(item, str) and (at := _surrogate_at(item)) is not None:
                return _invalid(field, f"'{field}'", item, at)
            if isinstance(item, dict | list):
                nested.append((field, item))
        containers.extend(reversed(nested))  # the first nested container is looked at next
    return None


def _invalid(field: str, where: str, text: str, at: int) -> PydanticCustomError:
    code_point = f"U+{ord(text[at]):04X}"
    return PydanticCustomError(
        INVALID_UNICODE,
        "{message}",  # the message is context, so braces in a field name stay as they are
        {
            "field": field,
            "message": f"Invalid text in {where}: character {at} is a lone UTF-16 "
            f"surrogate ({code_point}), which is not valid Unicode. Replace lone UTF-16 "
            "surrogates (pair them or remove them) and send valid UTF-8.",
        },
    )


def valid_text(body: Any) -> Any:
    """A pydantic before-validator for a whole request body: ``body`` as it is, or the
    ``invalid_unicode`` error. Anything but a JSON object is left to the schema."""
    if isinstance(body, dict) and (error := lone_surrogate(body)) is not None:
        raise error
    return body
