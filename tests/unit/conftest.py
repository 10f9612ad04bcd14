"""Unit-level fixtures: no servers, no subprocesses, no network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgeroute.config.registry import ModelSpec
from edgeroute.pipeline import execute
from edgeroute.tools.cli import main
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


@pytest.fixture
def usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., str]:
    """Runs ``edgeroute ARGS`` (on a store in tmp_path), which must stop with a usage
    error (exit 2); returns what it printed on stderr."""
    monkeypatch.setenv("EDGEROUTE_SQLITE_PATH", str(tmp_path / "edgeroute.db"))

    def run(*args: str) -> str:
        with pytest.raises(SystemExit) as stopped:
            main(list(args))
        assert stopped.value.code == 2
        return capsys.readouterr().err

    return run
