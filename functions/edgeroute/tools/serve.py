"""`edgeroute serve`: the gateway as one local process on the embedded store.

With ``--local-upstream`` it also starts llama.cpp's server (SmolLM2-135M) as the
``small`` model, keeps a development key in ``.edgeroute/dev-key`` (mode 0600), and
prints copy-paste examples that read it from there (the key itself is never printed:
the banner lands in logs), so a fresh checkout answers requests with no GPU or network.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from pathlib import Path

import uvicorn

from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings
from edgeroute.store import Store
from edgeroute.store.files import narrow, write_private
from edgeroute.store.keys import hash_key, key_id_for, mint_key
from edgeroute.tools.header_guard import capped


async def _valid(store: Store, secret: str | None) -> bool:
    record = await store.get_key(key_id_for(hash_key(secret))) if secret else None
    return record is not None and not record.revoked


def _dev_key(store: Store, path: Path) -> None:
    """The development key: reused while it is valid, minted otherwise; its file is
    readable by its owner only (0600, in a 0700 folder when edgeroute creates it)."""
    secret = path.read_text().strip() if path.is_file() else None
    if secret and asyncio.run(_valid(store, secret)):
        narrow(path)  # a key file an older version left readable by others
        return
    secret, record = mint_key("dev", tenant="dev")
    asyncio.run(store.put_key(record))
    write_private(path, secret + "\n")


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


def run_dev_server(settings: Settings, *, host: str, port: int, local_upstream: bool) -> int:
    from edgeroute.api.app import create_app
    from edgeroute.tools import llama

    proc = None
    try:
        if local_upstream:
            proc, base_url = llama.start()
            os.environ["EDGEROUTE_LOCAL_LLM_URL"] = base_url
            print(f"local upstream (llama.cpp, SmolLM2-135M) ready at {base_url}", flush=True)
        gateway = Gateway.from_settings(settings)
        if gateway.audit.archive is not None:
            gateway.audit.archive.sweep()  # then on the first write, and hourly
        key_file = (Path(settings.sqlite_path).parent / "dev-key").absolute()
        _dev_key(gateway.store, key_file)
        print(_banner(host, port, key_file), flush=True)
        protocol = capped(settings.max_header_bytes, settings.max_headers)
        uvicorn.run(create_app(gateway), host=host, port=port, log_level="warning", http=protocol)
    finally:
        if proc is not None:
            llama.stop(proc)
    return 0
