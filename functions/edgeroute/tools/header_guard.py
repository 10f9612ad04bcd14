"""`edgeroute serve`'s HTTP protocol: uvicorn's httptools one with a cap on each request's
head (the request line and headers), in bytes and in header count.

httptools has no cap of its own (uvicorn's ``h11_max_incomplete_event_size`` applies to
its h11 protocol only): four 64 MB headers took 21.7 s and grew the process from 159
to 419 MB. Here the bytes of a head are counted as they arrive, before the parser
buffers them, so a connection holds at most the cap plus one socket read of a head;
past the cap, or past the header count, the answer is a 431 in OpenAI's error shape
and the connection is closed. Behind API Gateway the same limits are AWS's (10 KB).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

_HEAD_END = b"\r\n\r\n"


class _TooManyHeaders(Exception):
    """Raised from the parser's header callback; httptools then stops parsing."""


class HeadCappedHttpTools(HttpToolsProtocol):
    """One connection; ``max_head_bytes`` and ``max_headers`` are set by ``capped``."""

    max_head_bytes = 64 * 1024
    max_headers = 100

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_bytes: int | None = 0  # None while a body (not a head) is arriving
        self._tail = b""  # the last bytes of the head so far: its end may span two reads
        self._header_count = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._head_bytes is not None and not self._head_fits(data):
            self._refuse("bytes")
            return
        super().data_received(data)

    def _head_fits(self, data: bytes) -> bool:
        assert self._head_bytes is not None
        room = self.max_head_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            self._tail = data[-3:]
            return True
        # Over the cap, unless the head ends within it (the rest is body or the next request).
        return (self._tail + data[:room]).find(_HEAD_END) >= 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            raise _TooManyHeaders
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes, self._tail = 0, b""

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers a parser error with this; a header callback's is a count refusal.
        if self._header_count > self.max_headers:
            self._refuse("count")
        else:
            super().send_400_response(msg)

    def _refuse(self, what: str) -> None:
        self._refused = True
        limit = (
            f"{self.max_head_bytes} bytes of request line and headers"
            if what == "bytes"
            else f"{self.max_headers} headers"
        )
        body = json.dumps(
            {
                "error": {
                    "message": f"The request's headers are larger than edgeroute takes "
                    f"({limit}). Send fewer or shorter headers.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "headers_too_large",
                }
            }
        ).encode()
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()


def capped(max_head_bytes: int, max_headers: int) -> type[HeadCappedHttpTools]:
    """The protocol class for uvicorn's ``http=``, with these caps."""
    return type(
        "HeadCapped",
        (HeadCappedHttpTools,),
        {"max_head_bytes": max_head_bytes, "max_headers": max_headers},
    )
