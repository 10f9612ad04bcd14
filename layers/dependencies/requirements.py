"""Print the Lambda layer's requirements: pyproject.toml's runtime dependencies, less
what the layer must not carry. Run by the Makefile at build time, so the layer can
never drift from the package's declared (and tested) dependency pins.

    python requirements.py ../../pyproject.toml > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib

# boto3/botocore: the python3.12 runtime provides them (a copy would shadow its version).
# uvloop: only StreamFunction runs uvicorn, one request at a time; asyncio's loop does.
EXCLUDED = {"boto3", "botocore", "s3transfer", "uvloop"}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def layer_requirements(pyproject: str) -> list[str]:
    with open(pyproject, "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    return [d.split(";", 1)[0].strip() for d in deps if _name(d) not in EXCLUDED]


if __name__ == "__main__":
    print("\n".join(layer_requirements(sys.argv[1])))
