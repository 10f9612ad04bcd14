"""pip-audit over what ships: every runtime dependency (pyproject's ``dependencies`` and
everything they pull in, at the versions installed) is checked against PyPI's
vulnerability data, and nothing is found beyond the accepted entries in
``.pip-audit-ignore``. An audit that cannot reach its data never passes as a clean one:
when no dependency could be checked (a network whose PyPI answers 404 for
https://pypi.org/pypi/NAME/VERSION/json, one request a dependency) the test is skipped
with pip-audit's reason in the summary; when only some could, it fails naming them.
``EDGEROUTE_TEST_SKIP_PIP_AUDIT=1`` skips it without asking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.packaging.conftest import REPO

IGNORE_FILE = REPO / ".pip-audit-ignore"


def runtime_pins() -> dict[str, str]:
    """{distribution: installed version} for the runtime dependencies and theirs,
    following the extras asked for and the markers that hold on this platform."""
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins: dict[str, str] = {}
    todo = [(Requirement(text), "") for text in wanted]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        seen = (req.name.lower(), frozenset(req.extras))
        if seen in done:
            continue
        done.add(seen)
        dist = metadata.distribution(req.name)
        pins[dist.metadata["Name"].lower().replace("_", "-")] = dist.version
        for text in dist.requires or ():
            todo += [(Requirement(text), e) for e in ("", *sorted(req.extras))]
    return dict(sorted(pins.items()))


def accepted() -> dict[str, str]:
    """{vulnerability id: the line accepting it} from the ignore file."""
    out = {}
    for line in IGNORE_FILE.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            out[text.split()[0]] = line
    return out


def test_the_runtime_dependencies_are_followed_through_extras_and_markers() -> None:
    pins = runtime_pins()
    assert {"fastapi", "starlette", "pydantic-core", "cryptography", "botocore"} <= set(pins)
    assert "pytest" not in pins and "moto" not in pins  # test tools do not ship


def test_pip_audit_finds_nothing_unexplained_in_the_runtime_dependencies(
    tmp_path: Path,
) -> None:
    if os.environ.get("EDGEROUTE_TEST_SKIP_PIP_AUDIT") == "1":
        pytest.skip("pip-audit skipped: EDGEROUTE_TEST_SKIP_PIP_AUDIT=1 (no PyPI JSON API)")
    requirements = tmp_path / "runtime.txt"
    requirements.write_text("".join(f"{n}=={v}\n" for n, v in runtime_pins().items()))
    ignores = [arg for vuln in accepted() for arg in ("--ignore-vuln", vuln)]
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip_audit", "-r", str(requirements)),
            *("--no-deps", "--disable-pip", "--progress-spinner", "off"),
            *("--format", "json", "--timeout", "30", *ignores),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip(), (
        f"pip-audit could not run (PyPI unreachable?): {done.stderr[-1500:]}"
    )
    report = json.loads(done.stdout)
    unchecked = [d for d in report["dependencies"] if "skip_reason" in d]
    if unchecked and len(unchecked) == len(report["dependencies"]):
        pytest.skip(
            f"pip-audit reached no vulnerability data for any of the {len(unchecked)} runtime "
            f"dependencies, so there is no result: {unchecked[0]['skip_reason']!r}"
        )
    assert not unchecked, (
        f"pip-audit could not check {len(unchecked)} of {len(report['dependencies'])} runtime "
        f"dependencies ({', '.join(d['name'] for d in unchecked)}), so the audit proves "
        f"nothing about them. pip-audit says: {unchecked[0]['skip_reason']!r}. It reads "
        "https://pypi.org/pypi/NAME/VERSION/json; run where that answers (or set "
        "EDGEROUTE_TEST_SKIP_PIP_AUDIT=1 to skip, which the summary then shows)."
    )
    found = {
        f"{d['name']} {d['version']}": [v["id"] for v in d["vulns"]]
        for d in report["dependencies"]
        if d.get("vulns")
    }
    assert not found, (
        f"known vulnerabilities in runtime dependencies: {found}. Upgrade the pin, or accept "
        "one in .pip-audit-ignore with the reason (and in docs/security.md)."
    )
    assert done.returncode == 0, done.stderr[-1500:]
