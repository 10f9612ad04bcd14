"""Print a Lambda layer's requirements: pyproject.toml's runtime dependencies, less
what the layer must not carry. Run by the Makefile at build time, so a layer can
never drift from the package's declared (and tested) dependency pins.

    python requirements.py ../../pyproject.toml [full|core] > requirements.txt
    python requirements.py ../../pyproject.toml full --no-deps > no-deps.txt

``full`` (DependenciesLayer) serves the router, stream and batch functions; ``core``
(CoreLayer) only what the authorizer and health probe import: no onnxruntime, numpy,
sentencepiece, FastAPI or Mangum (tests/packaging/test_build.py checks both imports).
"""

from __future__ import annotations

import re
import sys
import tomllib

# boto3/botocore: the python3.12 runtime provides them (a copy would shadow its version).
# uvloop: only StreamFunction runs uvicorn, one request at a time; asyncio's loop does.
EXCLUDED = {"boto3", "botocore", "s3transfer", "uvloop"}
# Installed without their dependencies, which would pull botocore in: aws-xray-sdk needs
# only botocore (the runtime's) and wrapt (pinned in pyproject.toml beside it).
WITHOUT_DEPS = {"aws-xray-sdk"}
# Settings, config files, the store, the upstream HTTP client and its AWS signing,
# key and JWT checks; tzdata for schedules in a reloaded configuration.
CORE = {
    "pydantic",
    "pydantic-settings",
    "pyyaml",
    "httpx",
    "httpx-aiohttp",
    "httpx-sse",
    "aiohttp",
    "aws-lambda-powertools",
    "pyjwt",
    "tzdata",
}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def layer_requirements(pyproject: str, layer: str = "full", no_deps: bool = False) -> list[str]:
    """The layer's requirements: those pip resolves, or (``no_deps``) those it installs
    as they are (``WITHOUT_DEPS``)."""
    if layer not in ("full", "core"):
        raise ValueError(f"layer must be full or core, not {layer!r}")
    with open(pyproject, "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    wanted = [d for d in deps if _name(d) not in EXCLUDED and (_name(d) in WITHOUT_DEPS) == no_deps]
    if layer == "core":
        wanted = [d for d in wanted if _name(d) in CORE]
        missing = CORE - {_name(d) for d in wanted}
        if missing and not no_deps:
            raise ValueError(f"core packages missing from {pyproject}: {sorted(missing)}")
    return [d.split(";", 1)[0].strip() for d in wanted]


if __name__ == "__main__":
    print(
        "\n".join(layer_requirements(sys.argv[1], *sys.argv[2:3], no_deps="--no-deps" in sys.argv))
    )
