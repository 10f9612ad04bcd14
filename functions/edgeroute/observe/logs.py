"""JSON logs through Powertools Logger, with the request's fields on every line.

Invariant: a log line written while a request is being served carries that request's
fields (``request_id``, ``correlation_id``, ``tenant``, ``key_id``, ``model``, ``tier``,
``route_reason``: whatever is known so far), however deep in the pipeline, a worker
thread or a background settlement it is written. The fields live in a context variable:
``begin`` starts a request's set, ``bind`` adds to it. Each ``bind`` replaces the set
rather than changing it, so concurrent requests (one event loop, batch lines in their own
tasks) never see each other's fields.

``configure`` makes every logger of the process print JSON (Powertools Logger's
formatter: the same shape as the audit trail and any ``Logger()``) at
``POWERTOOLS_LOG_LEVEL`` (the template's LogLevel; default INFO) for edgeroute's own
loggers, WARNING for libraries. On Lambda the handlers call it at import; off Lambda
only ``edgeroute serve`` does, so tests keep pytest's log capture.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from typing import IO, Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

DEFAULT_SERVICE = "edgeroute"
ROOT = "edgeroute"  # every module's logger is edgeroute.<path>, under this one
_ID_MAX = 128  # a correlation id is AWS's; a header a caller forged stays one short field

_fields: ContextVar[dict[str, str]] = ContextVar("edgeroute_log_fields", default={})  # noqa: B039


def begin(**fields: str) -> None:
    """A new request in this context: its fields, on top of what an outer layer bound
    (the Lambda event's correlation id)."""
    _fields.set({**_fields.get(), **_known(fields)})


def bind(**fields: str) -> None:
    """Add fields to the request's (this task's and what it starts from now on)."""
    _fields.set({**_fields.get(), **_known(fields)})


def _known(fields: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in fields.items() if value}


def current() -> dict[str, str]:
    """The fields a log line written here would carry."""
    return dict(_fields.get())


class RequestFields(logging.Filter):
    """Puts the request's fields on each record, where Powertools' formatter prints
    them beside the message (an explicit ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _fields.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def on_lambda() -> bool:
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def configure(*, force: bool = False, stream: IO[str] | None = None) -> logging.Handler | None:
    """Make the process's logging JSON; a no-op off Lambda unless ``force``d (``serve``).
    Returns the handler installed on the root logger (``None`` when nothing was done)."""
    if not (force or on_lambda()):
        return None
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
    level = logging.getLevelName((os.environ.get("POWERTOOLS_LOG_LEVEL") or "INFO").upper())
    level = level if isinstance(level, int) else logging.INFO
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(LambdaPowertoolsFormatter(service=service))  # Powertools' JSON
    handler.addFilter(RequestFields())
    root = logging.getLogger()
    for old in list(root.handlers):  # Lambda's plain-text handler; an earlier configure
        if getattr(old, "edgeroute_json", False) or on_lambda():
            root.removeHandler(old)
    handler.edgeroute_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    logging.getLogger(ROOT).setLevel(level)
    return handler


def unconfigure(handler: logging.Handler) -> None:
    """Take ``configure``'s handler off again (tests)."""
    logging.getLogger().removeHandler(handler)


def correlation_id(event: Any) -> str:
    """The id AWS gave the event that caused this work: API Gateway's request id, or
    the S3 request that wrote a batch object; '' when there is none."""
    if not isinstance(event, dict):
        return ""
    context = event.get("requestContext")
    if isinstance(context, dict) and isinstance(context.get("requestId"), str):
        return str(context["requestId"])[:_ID_MAX]
    for record in event.get("Records") or []:
        response = record.get("responseElements") if isinstance(record, dict) else None
        if isinstance(response, dict) and isinstance(response.get("x-amz-request-id"), str):
            return str(response["x-amz-request-id"])[:_ID_MAX]
    return ""
