"""The audit line keeps the shape Powertools' JSON formatter gave it (the same keys, in
the same order, with the same values), now that a formatter of its own writes it."""

from __future__ import annotations

import json
import logging
import time

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from edgeroute.pipeline.audit import AUDIT_LOGGER, AUDIT_MESSAGE, AuditFormatter, request_record


def _lines() -> tuple[str, str]:
    fields = request_record(
        request_id="r-1",
        principal=None,
        client_address="10.0.0.1",
        endpoint="/v1/chat/completions",
        status=200,
        started=time.perf_counter(),
    ).as_json()
    logger = logging.getLogger(AUDIT_LOGGER)
    theirs = logger.makeRecord(
        AUDIT_LOGGER, logging.INFO, __file__, 7, AUDIT_MESSAGE, (), None, "emit", fields
    )
    mine = logger.makeRecord(
        AUDIT_LOGGER, logging.INFO, __file__, 7, AUDIT_MESSAGE, (), None, "emit", {"audit": fields}
    )
    mine.created, mine.msecs = theirs.created, theirs.msecs
    powertools = LambdaPowertoolsFormatter(service=AUDIT_LOGGER)
    return powertools.format(theirs), AuditFormatter().format(mine)


@pytest.mark.parametrize("trace", [None, "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"])
def test_the_audit_line_is_powertools_line_key_for_key(
    trace: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if trace is None:
        monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    else:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", trace)
    theirs, mine = _lines()
    assert list(json.loads(mine).items()) == list(json.loads(theirs).items())
    assert mine == theirs


def test_the_audit_logger_prints_with_its_own_formatter() -> None:
    handlers = logging.getLogger(AUDIT_LOGGER).handlers
    assert isinstance(handlers[0].formatter, AuditFormatter)  # pytest adds its own after
