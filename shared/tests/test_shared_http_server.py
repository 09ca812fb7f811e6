"""The coalescing HTTP/1.1 protocol: one write per plain response, and byte for byte what
uvicorn's own httptools protocol sends, whatever the response's shape."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from sepsis_shared.http_server import CoalescingHttpToolsProtocol

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BODY = b'{"risk_score": 31.7}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """One route per response shape."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    json = [(b"content-type", b"application/json")]
    if path == "/plain":
        length = [(b"content-length", str(len(BODY)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": json + length})
        await send({"type": "http.response.body", "body": BODY})
    elif path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream":
        # chunked, with a pause between the head and the first chunk
        await send({"type": "http.response.start", "status": 200, "headers": json})
        await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"[1,", "more_body": True})
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"2]", "more_body": False})
    elif path == "/started-then-failed":
        await send({"type": "http.response.start", "status": 200, "headers": json})
        raise RuntimeError("the app failed after starting its response")
    elif path == "/started-then-returned":
        await send({"type": "http.response.start", "status": 200, "headers": json})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": json})
        await send({"type": "http.response.body", "body": b'{"error": "not found"}'})


@asynccontextmanager
async def serving(protocol: type[asyncio.Protocol]) -> AsyncIterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=protocol, lifespan="off", log_level="critical"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task


def request(method: str, path: str, *, close: bool = False) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n".encode() + connection + b"\r\n"


async def exchange(port: int, raw: bytes) -> bytes:
    """Send raw request bytes on one connection; everything the server sends until it closes
    the connection or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    received = bytearray()
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 0.5):
            received += chunk
    except TimeoutError:
        pass
    writer.close()
    return bytes(received)


def undated(wire: bytes) -> bytes:
    return re.sub(rb"date: [^\r]*\r\n", b"", wire)


CASES = [
    request("GET", "/plain"),
    request("HEAD", "/plain"),
    request("GET", "/empty"),
    request("GET", "/stream"),
    request("GET", "/missing", close=True),
    request("GET", "/started-then-failed"),
    request("GET", "/started-then-returned"),
    # a client that waits for "100 Continue" before its body: that line is never held
    b"POST /plain HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    # keep-alive, then pipelined: three answers on one connection, in order
    request("GET", "/plain") + request("GET", "/missing") + request("HEAD", "/plain"),
    request("GET", "/stream") + request("GET", "/plain", close=True),
]


async def test_the_wire_is_what_uvicorn_sends() -> None:
    async with serving(HttpToolsProtocol) as stock, serving(CoalescingHttpToolsProtocol) as ours:
        # every case on its own connection, all at once (each ends after 0.5 s of quiet)
        answers = await asyncio.gather(
            *(exchange(port, raw) for raw in CASES for port in (stock, ours))
        )
    for i, raw in enumerate(CASES):
        expected, got = answers[2 * i], answers[2 * i + 1]
        case = raw.split(b"\r\n")[0].decode()
        assert expected.startswith(b"HTTP/1.1 "), case
        assert undated(got) == undated(expected), case


class RecordingTransport(asyncio.Transport):
    """A connection that records each write (one write: one system call)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def writes_for(protocol_class: type[HttpToolsProtocol], raw: bytes) -> list[bytes]:
    config = uvicorn.Config(app, lifespan="off", log_level="critical")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(raw)
    for _ in range(20):  # let the app task and any held head run
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport.writes


async def test_a_plain_response_is_one_write() -> None:
    stock = await writes_for(HttpToolsProtocol, request("GET", "/plain"))
    coalesced = await writes_for(CoalescingHttpToolsProtocol, request("GET", "/plain"))
    assert len(stock) == 2  # uvicorn: the head, then the body
    assert coalesced == [b"".join(stock)]
    assert coalesced[0].endswith(b"\r\n\r\n" + BODY)


async def test_a_head_without_a_body_still_goes_out() -> None:
    for raw in (request("HEAD", "/plain"), request("GET", "/empty")):
        (head,) = await writes_for(CoalescingHttpToolsProtocol, raw)
        assert head.startswith(b"HTTP/1.1 ")
        assert head.endswith(b"\r\n\r\n")
