"""Fails at import time, as a missing dependency in a Lambda package does."""

from typing import Any

import edgeroute_module_that_does_not_exist  # noqa: F401


def handler(event: Any, context: Any) -> None:
    return None
