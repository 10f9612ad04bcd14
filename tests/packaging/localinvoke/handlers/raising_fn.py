"""Raises from the handler: Lambda reports an Unhandled function error."""

from typing import Any


class QuotaExceededError(Exception):
    pass


def handler(event: Any, context: Any) -> None:
    if event.get("recurse"):
        return _recurse(0)
    raise QuotaExceededError(f"quota exceeded for {event.get('key', '?')}")


def _recurse(n: int) -> None:
    # A RecursionError carries a very long stack: its X-Ray header exceeds 64 KiB.
    _recurse(n + 1)
