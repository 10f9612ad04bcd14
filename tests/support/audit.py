"""Reading the audit trail back: the ``edgeroute.audit`` JSON lines in a server's log,
or as this process emits them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

AUDIT_SERVICE = "edgeroute.audit"


def audit_records(log_text: str) -> list[dict[str, Any]]:
    """Every audit record in ``log_text``, in order (other lines are skipped)."""
    records = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and item.get("service") == AUDIT_SERVICE:
            records.append(item)
    return records


AuditLines = Callable[[], list[dict[str, Any]]]


@contextmanager
def captured_audit() -> Iterator[AuditLines]:
    """The records this process emits meanwhile, as its own (Powertools) handler formats them."""
    logger = logging.getLogger(AUDIT_SERVICE)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logger.handlers[0].formatter)
    logger.addHandler(handler)
    try:
        yield lambda: audit_records(out.getvalue())
    finally:
        logger.removeHandler(handler)
