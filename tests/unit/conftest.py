"""Unit-level fixtures: no servers, no subprocesses, no network."""

from __future__ import annotations

import pytest

from edgeroute.config.registry import ModelSpec
from edgeroute.pipeline import execute
from edgeroute.upstreams.base import Upstream
from tests.support.scripted_upstream import ScriptedUpstream


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> ScriptedUpstream:
    """Every upstream call the execute stage makes goes to one scripted upstream."""
    scripted = ScriptedUpstream()

    def adapter_for(model: ModelSpec) -> Upstream:
        return scripted

    monkeypatch.setattr(execute, "adapter_for", adapter_for)
    return scripted
