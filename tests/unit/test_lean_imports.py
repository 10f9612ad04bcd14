"""The authorizer and health probe run on the core layer, which has no onnxruntime,
numpy or FastAPI: importing their handlers must not reach them (a module-level import
anywhere on their chain would fail on Lambda). The router's init leaves out what only
some requests need: PyJWT (no OIDC issuer configured) and phonenumbers (no PII scan yet).
Each import runs in a fresh interpreter, so nothing an earlier test loaded can hide or
fake one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("onnxruntime", "numpy", "sentencepiece", "py3langid", "fastapi", "mangum")
ON_SOME_REQUESTS = ("jwt", "cryptography", "phonenumbers", "py3langid")
UNLOADED = {
    "edgeroute.handlers.authorizer": HEAVY + ON_SOME_REQUESTS,
    "edgeroute.handlers.health_probe": HEAVY + ON_SOME_REQUESTS,
    "edgeroute.handlers.api": ON_SOME_REQUESTS,
}
CHECK = """
import sys
import {module}
loaded = sorted(set({heavy!r}) & {{name.partition(".")[0] for name in sys.modules}})
print(",".join(loaded))
"""


@pytest.mark.parametrize("module", list(UNLOADED))
def test_handler_init_loads_only_what_every_request_needs(module: str, tmp_path: Path) -> None:
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n  - {name: m, endpoint: 'http://127.0.0.1:9/v1', tier: small}\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EDGEROUTE_")},
        "PYTHONPATH": str(REPO / "functions"),
        "EDGEROUTE_POLICY": str(REPO / "infra" / "routing.yaml"),
        "EDGEROUTE_EDGE_MODELS": str(REPO / "edge_models"),
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_STORE": "sqlite",
        "EDGEROUTE_SQLITE_PATH": str(tmp_path / "store.db"),
    }
    code = CHECK.format(module=module, heavy=UNLOADED[module])
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"{module} loads {done.stdout.strip()}"


def test_token_bounds_still_count_after_the_lazy_numpy_import() -> None:
    from edgeroute.wire.tokens import bound_tokens

    assert bound_tokens("") == 0
    assert bound_tokens("HTTPServer camelCase 42!") >= 6
