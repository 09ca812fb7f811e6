"""Request ids: a pure ASGI middleware that accepts or creates `X-Request-ID`.

The id lives in a ContextVar for the duration of the request, is stamped on every log record
(see `sepsis_shared.logs`), echoed in the response and forwarded upstream by the gateway.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode()
# Ids from clients are echoed into logs and headers: accept only a safe, bounded alphabet.
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    return _request_id.get()


def new_request_id() -> str:
    """A fresh random request id."""
    return uuid.uuid4().hex


def accept_request_id(raw: str | None) -> str:
    """The client's id when it is safe to reuse, else a fresh one."""
    if raw and _VALID.match(raw):
        return raw
    return new_request_id()


class RequestIdMiddleware:
    """Accept or create `X-Request-ID`, keep it in a ContextVar, echo it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: str | None = None
        for name, value in scope.get("headers", []):
            if name == _HEADER_BYTES:
                raw = value.decode("latin-1")
                break
        rid = accept_request_id(raw)
        token = _request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_BYTES
                ]
                headers.append((_HEADER_BYTES, rid.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        # On an exception the id stays set: Starlette's last-resort error handler runs outside
        # every middleware, this one included, and must still log and answer with it.
        await self.app(scope, receive, send_with_id)
        _request_id.reset(token)
