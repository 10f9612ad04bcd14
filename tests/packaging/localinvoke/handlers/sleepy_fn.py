"""Sleeps as long as asked, to run past the function timeout."""

import time
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    print("going to sleep", flush=True)
    time.sleep(float(event["sleep_s"]))
    return {"slept": event["sleep_s"]}
