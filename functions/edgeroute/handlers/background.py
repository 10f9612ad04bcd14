"""Background Responses on AWS: the worker function behind ``background: true``.

The router and stream functions store each accepted job as queued and invoke this
function asynchronously with ``{"tenant", "id"}``; it claims the job and runs it to its
end (up to the function's timeout, outside the HTTP API's 30 s). A scheduled event
(``{"sweep": true}``) takes over queued jobs whose invocation was lost and running jobs
whose worker stopped (an expired lease). See pipeline/background.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edgeroute.pipeline.background import BackgroundResponses
from edgeroute.pipeline.gateway import Gateway
from edgeroute.settings import Settings

_gateway = Gateway.from_settings(Settings.from_env())
_loop = asyncio.new_event_loop()  # kept, so upstream and store connections stay warm


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    async def run() -> int:
        workers = BackgroundResponses(_gateway, here=True)
        return await workers.run_here(event.get("tenant"), event.get("id"))

    return {"started": _loop.run_until_complete(run())}
