"""`edgeroute serve`: the gateway as one local process on the embedded store.

With ``--local-upstream`` it also starts llama.cpp's server (SmolLM2-135M) as the
``small`` model, keeps a development key in ``.edgeroute/dev-key`` (mode 0600), and
prints copy-paste examples that read it from there (the key itself is never printed:
the banner lands in logs), so a fresh checkout answers requests with no GPU or network.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import uvicorn

from edgeroute.batch.dispatch import LocalWorker
from edgeroute.batch.jobs import JobRunner
from edgeroute.observe import logs
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings
from edgeroute.store.file_storage import file_storage
from edgeroute.tools.devkey import dev_key, dev_key_file
from edgeroute.tools.header_guard import capped


def _banner(host: str, port: int, key_file: Path) -> str:
    """Where to find the key, never the key: the banner lands in logs and scrollback."""
    base = f"http://{host}:{port}"
    quoted = shlex.quote(str(key_file))
    return f"""
edgeroute is listening on {base}

  API key (development): in {key_file} (readable by you only)

  curl {base}/v1/chat/completions \\
    -H "Authorization: Bearer $(cat {quoted})" -H "Content-Type: application/json" \\
    -d '{{"model": "small", "messages": [{{"role": "user", "content": "Say hello"}}]}}'

  python -c 'from openai import OpenAI
c = OpenAI(base_url="{base}/v1", api_key=open({json.dumps(str(key_file))}).read().strip())
print(c.chat.completions.create(model="small",
      messages=[{{"role": "user", "content": "Say hello"}}]).choices[0].message.content)'
"""


def local_batches(gateway: Gateway) -> LocalWorker:
    """Batches created over HTTP run as tasks of the server's loop, on local files."""
    return LocalWorker(JobRunner(gateway, file_storage(gateway.settings)))


def run_dev_server(settings: Settings, *, host: str, port: int, local_upstream: bool) -> int:
    from edgeroute.api.app import create_app
    from edgeroute.tools import llama, otel, prometheus

    proc = None
    traces = None
    try:
        logs.configure(force=True)  # JSON, as on Lambda
        traces = otel.configure_serve()  # OpenTelemetry, if OTEL_EXPORTER_OTLP_ENDPOINT
        if local_upstream:
            proc, base_url = llama.start()
            os.environ["EDGEROUTE_LOCAL_LLM_URL"] = base_url
            print(f"local upstream (llama.cpp, SmolLM2-135M) ready at {base_url}", flush=True)
        gateway = Gateway.from_settings(settings)
        if gateway.audit.archive is not None:
            gateway.audit.archive.sweep()  # then on the first write, and hourly
        key_file = dev_key_file(settings)
        dev_key(gateway.store, key_file)
        print(_banner(host, port, key_file), flush=True)
        protocol = capped(settings.max_header_bytes, settings.max_headers)
        app = create_app(gateway)
        prometheus.install(app)  # GET /metrics
        app.state.batch_dispatch = local_batches(gateway)
        uvicorn.run(app, host=host, port=port, log_level="warning", http=protocol, log_config=None)
    finally:
        if traces is not None:
            traces.shutdown()
        if proc is not None:
            llama.stop(proc)
    return 0
