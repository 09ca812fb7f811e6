"""A deadline on request heads, for the gateway's HTTP server.

uvicorn times out idle keep-alive connections between requests, but nothing else: a client
that connects and never sends a byte, or sends its request line and headers one byte at a time,
holds its connection for as long as it likes. The gateway is the public door of the service,
so it bounds that: every request head (request line and headers) must arrive within
HEADER_READ_TIMEOUT_S (default 10 s) of the connection opening, or of the first byte after the
previous answer; past it, the client gets a 408 in the shared envelope and the connection is
closed. The body has its own deadline in the forwarding path (BODY_READ_TIMEOUT_S).

`HeadDeadlineProtocol` is handed to uvicorn as its HTTP protocol
(`uvicorn ... --http sepsis_gateway.server:HeadDeadlineProtocol`, the documented `--http`
option). It wraps, without subclassing, the protocol uvicorn would have chosen itself
(`--http auto`): bytes pass through unchanged; it only watches for the blank line that ends a
head, and for the first byte written back (an answer has begun).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from typing import Any, Final, cast

from uvicorn.config import HTTP_PROTOCOLS, Config
from uvicorn.importer import import_from_string
from uvicorn.server import ServerState

from sepsis_shared.requestid import new_request_id

HEADER_READ_TIMEOUT_ENV: Final = "HEADER_READ_TIMEOUT_S"
DEFAULT_HEADER_READ_TIMEOUT_S: Final = 10.0
_END_OF_HEAD: Final = b"\r\n\r\n"


@functools.cache
def header_read_timeout_s() -> float:
    """HEADER_READ_TIMEOUT_S from the environment (a positive number of seconds)."""
    raw = os.environ.get(HEADER_READ_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_HEADER_READ_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{HEADER_READ_TIMEOUT_ENV} must be a positive number of seconds")
    return value


def timeout_answer(timeout_s: float) -> bytes:
    """The raw 408 answer (the shared error envelope) for a head that did not arrive."""
    body = json.dumps(
        {
            "error": {
                "code": "request_timeout",
                "message": f"The request line and headers did not arrive within {timeout_s:g} s.",
                "request_id": new_request_id(),
                "details": {"header_read_timeout_s": timeout_s},
            }
        },
        separators=(",", ":"),
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _WatchedTransport:
    """The real transport as the wrapped protocol sees it, noting when it writes."""

    def __init__(self, transport: asyncio.Transport, on_write: Any) -> None:
        self._transport = transport
        self._on_write = on_write

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._on_write()
        self._transport.write(data)

    def writelines(self, data: Any) -> None:
        self._on_write()
        self._transport.writelines(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadDeadlineProtocol(asyncio.Protocol):
    """uvicorn's own HTTP protocol, with a deadline on each request head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        inner_class = import_from_string(HTTP_PROTOCOLS["auto"])
        self._inner: asyncio.Protocol = inner_class(config, server_state, app_state, _loop)
        self._loop = _loop or asyncio.get_event_loop()
        self._timeout_s = header_read_timeout_s()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._tail = b""  # the last bytes of the head so far, to find its end across chunks
        self._answered = False

    # -- the deadline ------------------------------------------------------------------------

    def _start_head(self) -> None:
        self._in_head = True
        self._answered = False
        self._tail = b""
        self._cancel()
        self._timer = self._loop.call_later(self._timeout_s, self._expire)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if not self._in_head or transport is None or transport.is_closing():
            return
        transport.write(timeout_answer(self._timeout_s))
        transport.close()

    def _wrote(self) -> None:
        self._answered = True

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it
        self._transport = cast("asyncio.Transport", transport)
        self._inner.connection_made(_WatchedTransport(self._transport, self._wrote))  # type: ignore[arg-type]
        self._start_head()

    def data_received(self, data: bytes) -> None:
        if not self._in_head and self._answered:
            # The first byte after an answer begins the next request's head.
            self._start_head()
        if self._in_head:
            seen = self._tail + data
            if _END_OF_HEAD in seen:
                self._in_head = False
                self._cancel()
            else:
                self._tail = seen[-(len(_END_OF_HEAD) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
