"""Returns the event, and logs a line, as the simplest Lambda handler does."""

from typing import Any

COLD_STARTS = 0  # module state survives between warm invocations only


def handler(event: Any, context: Any) -> dict[str, Any]:
    global COLD_STARTS
    COLD_STARTS += 1
    print(f"echo {event!r}")
    return {"event": event, "calls": COLD_STARTS}
