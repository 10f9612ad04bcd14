"""Start `edgeroute serve` as a real process on a free port, and mint keys for it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import yaml

from tests.support.served import Served

# The edge models (in-process: the embedder and the moderation model), as the acceptance
# registries serve them.
EDGE_MODELS: list[dict[str, object]] = [
    {
        "name": "use-multilingual-v3",
        "aliases": ["edge-embed"],
        "protocol": "edge",
        "tier": "edge",
        "capabilities": ["embeddings"],
        "context_window": 512,
    },
    {
        "name": "edge-moderation",
        "protocol": "edge",
        "tier": "edge",
        "capabilities": ["moderation"],
        "context_window": 100000,
    },
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess(Served):
    """One gateway process with its own SQLite file and registry."""

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        self.env = {**os.environ, **env}
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> GatewayProcess:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgeroute.tools.cli", "serve", "--port", str(self.port)],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edgeroute.tools.cli", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def create_key(self, name: str, *extra: str) -> dict[str, object]:
        done = self.cli("keys", "create", "--name", name, "--json", *extra)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        result: dict[str, object] = json.loads(done.stdout)
        return result


def state_folder(workdir: Path, name: str) -> Path:
    """Where ``registry_gateway(workdir, name, ...)`` keeps its store, key and archive."""
    return workdir / name / "state"


def policy_env(folder: Path, registry: object, policy: object) -> dict[str, str]:
    """A gateway's environment for ``registry`` and ``policy`` (written as YAML into
    ``folder``, beside its store)."""
    (folder / "models.yaml").write_text(yaml.safe_dump(registry))
    (folder / "routing.yaml").write_text(yaml.safe_dump(policy))
    return {
        "EDGEROUTE_REGISTRY": str(folder / "models.yaml"),
        "EDGEROUTE_POLICY": str(folder / "routing.yaml"),
        "EDGEROUTE_SQLITE_PATH": str(folder / "edgeroute.db"),
    }


def registry_gateway(
    workdir: Path, name: str, models: list[dict[str, object]], env: Mapping[str, str]
) -> GatewayProcess:
    """A gateway (not started yet) on a registry of ``models``, with its own state folder,
    named-model calls unclassified; ``env`` adds to or overrides that."""
    registry = workdir / f"{name}-models.yaml"
    registry.write_text(yaml.safe_dump({"models": models}))
    base = {
        "EDGEROUTE_REGISTRY": str(registry),
        "EDGEROUTE_SQLITE_PATH": str(state_folder(workdir, name) / "edgeroute.db"),
        "EDGEROUTE_CLASSIFY": "auto",
    }
    return GatewayProcess({**base, **env}, workdir)
