"""`edgeroute serve`: the gateway as one local process on the embedded store.

With ``--local-upstream`` it also starts llama.cpp's server (SmolLM2-135M) as the
``small`` model, keeps a development key in ``.edgeroute/dev-key``, and prints
copy-paste examples, so a fresh checkout answers requests with no GPU or network.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import uvicorn

from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings
from edgeroute.store import Store
from edgeroute.store.keys import hash_key, key_id_for, mint_key


async def _valid(store: Store, secret: str | None) -> bool:
    record = await store.get_key(key_id_for(hash_key(secret))) if secret else None
    return record is not None and not record.revoked


def _dev_key(store: Store, path: Path) -> str:
    """The development key: reused while it is valid, minted (and saved 0600) otherwise."""
    secret = path.read_text().strip() if path.is_file() else None
    if secret and asyncio.run(_valid(store, secret)):
        return secret
    secret, record = mint_key("dev", tenant="dev")
    asyncio.run(store.put_key(record))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def _banner(host: str, port: int, secret: str) -> str:
    base = f"http://{host}:{port}"
    return f"""
edgeroute is listening on {base}

  API key (development): {secret}

  curl {base}/v1/chat/completions \\
    -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
    -d '{{"model": "small", "messages": [{{"role": "user", "content": "Say hello"}}]}}'

  python -c 'from openai import OpenAI
c = OpenAI(base_url="{base}/v1", api_key="{secret}")
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
        key_file = Path(settings.sqlite_path).parent / "dev-key"
        secret = _dev_key(gateway.store, key_file)
        print(_banner(host, port, secret), flush=True)
        uvicorn.run(create_app(gateway), host=host, port=port, log_level="warning")
    finally:
        if proc is not None:
            llama.stop(proc)
    return 0
