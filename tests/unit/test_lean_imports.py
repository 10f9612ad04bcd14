"""The authorizer and health probe run on the core layer, which has no onnxruntime,
numpy or FastAPI: importing their handlers must not reach them (a module-level import
anywhere on their chain would fail on Lambda). Each import runs in a fresh interpreter,
so nothing an earlier test loaded can hide or fake one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
HEAVY = ("onnxruntime", "numpy", "sentencepiece", "py3langid", "fastapi", "mangum")
CHECK = """
import sys
import {module}
loaded = sorted(set({heavy!r}) & {{name.partition(".")[0] for name in sys.modules}})
print(",".join(loaded))
"""


@pytest.mark.parametrize(
    "module", ["edgeroute.handlers.authorizer", "edgeroute.handlers.health_probe"]
)
def test_lean_handler_imports_neither_the_edge_runtime_nor_the_app(
    module: str, tmp_path: Path
) -> None:
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n  - {name: m, endpoint: 'http://127.0.0.1:9/v1', tier: small}\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(FUNCTIONS),
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_STORE": "sqlite",
        "EDGEROUTE_SQLITE_PATH": str(tmp_path / "store.db"),
    }
    code = CHECK.format(module=module, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"{module} loads {done.stdout.strip()}"


def test_token_bounds_still_count_after_the_lazy_numpy_import() -> None:
    from edgeroute.wire.tokens import bound_tokens

    assert bound_tokens("") == 0
    assert bound_tokens("HTTPServer camelCase 42!") >= 6
