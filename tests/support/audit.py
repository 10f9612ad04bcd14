"""Reading the audit trail back: the ``edgeroute.audit`` JSON lines in a server's log."""

from __future__ import annotations

import json
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
