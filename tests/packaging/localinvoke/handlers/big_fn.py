"""Returns a response of the requested size, to cross Lambda's 6 MB limit."""

from typing import Any


def handler(event: Any, context: Any) -> str:
    return "x" * int(event["bytes"])
