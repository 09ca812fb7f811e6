"""The deadline on request heads, on a real uvicorn server speaking over real sockets."""

from __future__ import annotations

import asyncio
import json
import select
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from sepsis_gateway import server as head_deadline

TIMEOUT_S = 0.4


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setenv(head_deadline.HEADER_READ_TIMEOUT_ENV, str(TIMEOUT_S))
    head_deadline.header_read_timeout_s.cache_clear()
    chosen = _free_port()
    config = uvicorn.Config(
        hello,
        host="127.0.0.1",
        port=chosen,
        http=head_deadline.HeadDeadlineProtocol,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    yield chosen
    server.should_exit = True
    await task
    head_deadline.header_read_timeout_s.cache_clear()


REQUEST = b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


async def test_a_connection_that_sends_nothing_gets_a_408_and_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    status, body = await _answer(reader)
    assert status == 408
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed
    writer.close()


async def test_a_head_trickled_byte_by_byte_past_the_deadline_is_cut_off(port: int) -> None:
    sent, answer = await asyncio.to_thread(_trickle, port, REQUEST, 0.05)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert sent < len(REQUEST)  # cut off before the head was complete


def _trickle(port: int, data: bytes, every_s: float) -> tuple[int, bytes]:
    """Send `data` a byte at a time until the server answers or hangs up: the bytes sent
    and everything the server sent back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sent = 0
        for sent in range(len(data)):
            readable, _, _ = select.select([sock], [], [], every_s)
            if readable:
                break
            try:
                sock.sendall(data[sent : sent + 1])
            except OSError:
                break
        else:
            sent = len(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return sent, b"".join(chunks)


async def test_keep_alive_requests_each_get_their_own_deadline(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):
        # well inside the deadline each time, though together past it
        await asyncio.sleep(TIMEOUT_S * 0.6)
        writer.write(REQUEST)
        await writer.drain()
        assert await _answer(reader) == (200, b"ok")
    # the next head begins and stalls: it gets its own 408
    writer.write(b"GET / HT")
    await writer.drain()
    status, _ = await _answer(reader)
    assert status == 408
    writer.close()


def test_the_timeout_must_be_a_positive_number(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("0", "-3", "soon"):
        monkeypatch.setenv(head_deadline.HEADER_READ_TIMEOUT_ENV, bad)
        head_deadline.header_read_timeout_s.cache_clear()
        with pytest.raises(ValueError, match=head_deadline.HEADER_READ_TIMEOUT_ENV):
            head_deadline.header_read_timeout_s()
    head_deadline.header_read_timeout_s.cache_clear()
