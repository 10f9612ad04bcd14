"""The README's local invoke examples run as written: the `edgeroute invoke` command
lines are parsed out of README.md and run verbatim from the repository root, with no
tables, no AWS and no key set up (the local registry, the SQLite store, the development
key); `make invoke` expands to the same command."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.packaging.conftest import REPO

_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)


def _readme_lines(command: str) -> list[str]:
    """Every line of README.md's shell blocks that runs ``command`` (comments dropped)."""
    text = (REPO / "README.md").read_text()
    lines = [line for block in _BLOCK.findall(text) for line in block.splitlines()]
    return [line.split("  #")[0].strip() for line in lines if line.startswith(command)]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """A shell on a fresh clone: no EDGEROUTE_* or AWS settings; this worktree's code
    first; the store in tmp_path so the test leaves the repository alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "AWS_"))}
    env["PYTHONPATH"] = str(REPO / "functions")
    env["EDGEROUTE_SQLITE_PATH"] = str(tmp_path / ".edgeroute" / "edgeroute.db")
    return env


@pytest.mark.timeout(600)
def test_readme_invoke_lines_answer(tmp_path: Path) -> None:
    lines = _readme_lines(".venv/bin/edgeroute invoke ")
    assert lines, "README.md shows no `.venv/bin/edgeroute invoke` command"
    for line in lines:
        done = subprocess.run(
            shlex.split(line),
            cwd=REPO,
            env=_clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        payload = json.loads(done.stdout)
        assert payload["statusCode"] == 200, payload
        body = json.loads(payload["body"])
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
        assert payload["headers"]["x-edgeroute-model"] == "smollm2-135m"
        assert "Traceback" not in done.stderr
    # The development key was minted beside the store, readable by its owner only.
    key_file = tmp_path / ".edgeroute" / "dev-key"
    assert key_file.read_text().startswith("er-") and key_file.stat().st_mode & 0o077 == 0


def test_make_invoke_runs_the_same_command() -> None:
    invoked = set(_readme_lines(".venv/bin/edgeroute invoke "))
    lines = _readme_lines("make invoke")
    assert lines, "README.md shows no `make invoke` command"
    for line in lines:
        # -n prints the recipe without running anything (nor installing the venv); under
        # `make test` this is a sub-make, which would also print the directories it enters.
        done = subprocess.run(
            ["make", "-n", "--no-print-directory", *shlex.split(line)[1:]],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] in invoked


def test_the_runtime_client_is_a_run_dependency() -> None:
    """`make run` installs `.[local]`; `edgeroute invoke` needs awslambdaric from it."""
    pyproject = (REPO / "pyproject.toml").read_text()
    local = re.search(r"^local = \[(.*?)\]", pyproject, re.M | re.S)
    assert local and "awslambdaric==" in local.group(1)
    assert "install -e '.[local]'" in (REPO / "Makefile").read_text()
