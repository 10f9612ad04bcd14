"""JSON answers that always render: an upstream may send text that is not valid Unicode."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse


class AnyTextJSONResponse(JSONResponse):
    """UTF-8 JSON, as Starlette renders it, unless a string holds a lone surrogate (an
    upstream's answer or error may spell one, ``"\\ud800"``): then the whole body is
    ASCII with ``\\u`` escapes, as JSON allows and as the stream path always sends it.
    Requests cannot bring one (wire/text.py refuses them)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()
