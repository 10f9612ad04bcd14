"""The package's shape, checked: imports only point down the request path's floors, and
developer tooling never ships with (or is imported by) the Lambda code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "edgeroute"

# Floors from the ground up: a room may import only rooms on lower floors (and itself).
FLOORS: dict[str, int] = {
    "types": 0,
    "errors": 1,
    "wire": 2,
    "config": 2,
    "settings": 3,
    "pricing": 4,
    "store": 4,
    "edge": 4,
    "upstreams": 5,
    "health": 6,
    "privacy": 2,
    "observe": 2,
    "pipeline": 7,
    "api": 8,
    "batch": 9,
    "handlers": 10,
    "tools": 11,
}


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "edgeroute" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every edgeroute module this file imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "edgeroute":
                found += [(node.lineno, f"edgeroute.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if name.startswith("edgeroute")]


def _modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    )


def _own_room(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def test_every_room_has_a_floor() -> None:
    rooms = {_own_room(p) for p in _modules()}
    assert rooms <= set(FLOORS), f"give these a floor in FLOORS: {sorted(rooms - set(FLOORS))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    here = _own_room(path)
    upward = []
    for line, module in _imports(path):
        room = _room(module)
        if room is None or room == here or room == "__version__":
            continue
        if FLOORS[room] >= FLOORS[here]:
            upward.append(f"line {line}: {module} ({room}, floor {FLOORS[room]})")
    assert not upward, f"{here} (floor {FLOORS[here]}) imports upward or sideways: {upward}"


def test_runtime_code_never_imports_tools() -> None:
    offenders = [
        f"{p.relative_to(PACKAGE)}:{line}"
        for p in _modules()
        if _own_room(p) != "tools"
        for line, module in _imports(p)
        if _room(module) == "tools"
    ]
    assert not offenders
