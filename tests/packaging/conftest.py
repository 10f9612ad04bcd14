"""Fixtures for the packaging checks: one real `sam build` per session, and the tables
and keys the local invokes run against (moto's DynamoDB server)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from edgeroute.store.dynamodb import DynamoDBStore, shared_client
from edgeroute.store.keys import mint_key
from edgeroute.store.tables import TableNames, create_tables
from tests.packaging.sizes import REPO as REPO
from tests.packaging.sizes import TEMPLATE as TEMPLATE
from tests.support.moto_server import AWS_ENV, MotoServer

SAM = REPO / ".venv-sam" / "bin" / "sam"


def python312() -> str | None:
    """A Python 3.12 interpreter (Lambda's runtime version) for sam build and import checks."""
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    candidates = [shutil.which("python3.12"), *pyenv]
    for candidate in candidates:
        if candidate is None:
            continue
        done = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.stdout.strip() == "True":
            return str(candidate)
    return None


@dataclass(frozen=True)
class SamBuild:
    build_dir: Path
    seconds: float
    log: str


def run_sam_build(out: Path, *args: str, arch: str | None = None) -> SamBuild:
    """`sam build` of the repo's template into ``out`` (``args``: resources to build,
    parameter overrides); ``arch`` sets EDGEROUTE_ARCH for the layers' Makefile."""
    if not SAM.exists():
        pytest.fail(f"{SAM} is missing: `make sam-cli` installs SAM CLI in its own venv")
    # SAM finds the interpreter for `Runtime: python3.12` on PATH: its own venv's.
    env = {**os.environ, "PATH": f"{SAM.parent}{os.pathsep}{os.environ['PATH']}"}
    env["SAM_CLI_TELEMETRY"] = "0"
    if arch is not None:
        env["EDGEROUTE_ARCH"] = arch
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(SAM),
            "build",
            *args,
            "--template",
            str(TEMPLATE),
            "--build-dir",
            str(out / "build"),
            "--cache-dir",
            str(out / "cache"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.perf_counter() - started
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    return SamBuild(out / "build", seconds, log)


@pytest.fixture(scope="session")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> SamBuild:
    """`sam build` of the repo's template, once per session, into a temporary folder."""
    return run_sam_build(tmp_path_factory.mktemp("sam"))


@dataclass(frozen=True)
class LocalStack:
    """DynamoDB tables in moto and the environment a local invoke needs to reach them."""

    env: dict[str, str]
    names: TableNames

    def store(self) -> DynamoDBStore:
        return DynamoDBStore(
            self.names,
            endpoint_url=self.env["AWS_ENDPOINT_URL_DYNAMODB"],
            region=AWS_ENV["AWS_DEFAULT_REGION"],
        )


@pytest.fixture(scope="module")
def local_stack(moto_server: MotoServer, registry_file: Path) -> Iterator[LocalStack]:
    names = TableNames.with_prefix(f"pkg-{uuid.uuid4().hex[:6]}")
    env = {
        **AWS_ENV,
        **names.as_env(),
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server.url,
        "AWS_ENDPOINT_URL_S3": moto_server.url,
        "EDGEROUTE_REGISTRY": str(registry_file),
        "EDGEROUTE_KEY_CACHE_TTL": "0",
    }
    # The variables stay set for the module: in-process store calls need the credentials.
    with pytest.MonkeyPatch.context() as mp:
        for var, value in env.items():
            mp.setenv(var, value)
        create_tables(shared_client(moto_server.url, AWS_ENV["AWS_DEFAULT_REGION"]), names)
        yield LocalStack(env, names)


def put_key(stack: LocalStack, name: str, *, revoked: bool = False) -> tuple[str, str]:
    """Mint a key into the stack's keys table; (secret, key id)."""
    secret, record = mint_key(name)

    async def put() -> None:
        store = stack.store()
        await store.put_key(replace(record, revoked=revoked))
        await store.close()

    asyncio.run(put())
    return secret, record.key_id
