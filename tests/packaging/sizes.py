"""The unzipped size of each built function with the layers it runs with: one
measurement, shared by the packaging limits (test_build.py) and the benchmark report."""

from __future__ import annotations

from pathlib import Path

from edgeroute.tools.localinvoke import load_function

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symlinks not followed)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def built_layers(name: str, build: Path) -> list[Path]:
    """The layers of ``name`` that ``sam build`` builds (an ARN's layer is not)."""
    layers = load_function(TEMPLATE, name).layers
    return [
        build / str(layer) for layer in layers if isinstance(layer, str) and layer.isidentifier()
    ]


def function_size(name: str, build: Path) -> int:
    """The built function's code plus its built layers, in bytes."""
    return tree_size(build / name) + sum(tree_size(layer) for layer in built_layers(name, build))
