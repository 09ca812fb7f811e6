"""The forwarding path, as pure ASGI: the hot path of the gateway, kept lean.

Every forwarded public route (DESIGN §4) is answered here, before FastAPI's router: check the
key and the rate limit, read the body as bytes (refusing it with 413 past the limit), send it
upstream on the same path with the request id and the service token, and hand the upstream's
status, content type and body back untouched. Only those headers go upstream; the client's key
and every other header stay here. Anything else falls through to the FastAPI app.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sepsis_gateway.auth import Role
from sepsis_gateway.routes.table import PUBLIC_ROUTES, Access, PublicRoute
from sepsis_gateway.state import STATE_KEY, Gateway, authorise
from sepsis_shared.body import check_json_media_type
from sepsis_shared.errors import (
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
    error_body,
)
from sepsis_shared.requestid import REQUEST_ID_HEADER, current_request_id

logger = logging.getLogger("sepsis.gateway.proxy")

_API_KEY = b"x-api-key"
_CONTENT_TYPE = b"content-type"
_CONTENT_LENGTH = b"content-length"
_JSON = "application/json"
_ROLES = {Access.KEY: Role.CLIENT, Access.ADMIN: Role.ADMIN}
CALLER_ROLE_HEADER = "X-Caller-Role"
"""Carries the caller's role to the service, which checks it again on its admin routes."""


class _MethodNotAllowed(ServiceError):
    status = 405
    code = "method_not_allowed"


class ClientGone(Exception):
    """The client disconnected before its body arrived; nobody is left to answer."""


async def read_body(
    receive: Receive, *, declared: int | None, limit: int, timeout_s: float
) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes and
    with 408 when it has not all arrived within `timeout_s`."""
    if declared is not None and declared > limit:
        raise PayloadTooLarge(
            f"Request body of {declared} bytes exceeds the limit of {limit} bytes.",
            details={"limit_bytes": limit},
        )
    try:
        async with asyncio.timeout(timeout_s):
            return await _receive_body(receive, limit)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {timeout_s:g} s.",
            details={"body_read_timeout_s": timeout_s},
            headers={"Connection": "close"},
        ) from None


async def _receive_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        if chunk:
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(
                    f"Request body exceeds the limit of {limit} bytes.",
                    details={"limit_bytes": limit},
                )
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(
    send: Send, status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, exc: ServiceError) -> None:
    body = json.dumps(
        error_body(exc.code, exc.message, exc.details), separators=(",", ":")
    ).encode()
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    await _send(send, exc.status, body, b"application/json", extra)


class ForwardMiddleware:
    """Answer the forwarded public routes; pass everything else to the wrapped app."""

    def __init__(self, app: ASGIApp, *, routes: tuple[PublicRoute, ...] = PUBLIC_ROUTES) -> None:
        self.app = app
        forwarded = [r for r in routes if r.upstream is not None]
        self.table = {(r.path, r.method): r for r in forwarded}
        self.allowed: dict[str, str] = {}
        for r in forwarded:
            self.allowed[r.path] = ", ".join(filter(None, (self.allowed.get(r.path), r.method)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.table.get((scope["path"], scope["method"]))
        if route is None:
            allowed = self.allowed.get(scope["path"])
            if allowed is None:
                await self.app(scope, receive, send)
                return
            await _send_error(
                send,
                _MethodNotAllowed(
                    f"{scope['method']} is not allowed on {scope['path']}; use {allowed}.",
                    headers={"Allow": allowed},
                ),
            )
            return
        gateway: Gateway = scope["state"][STATE_KEY]
        started = False

        async def send_and_mark(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._forward(route, gateway, scope, receive, send_and_mark)
        except ServiceError as exc:
            await _send_error(send, exc)
        except ClientGone:
            return
        except Exception:
            # A defect of this path: the log has the trace, the client gets the envelope
            # (this path runs ahead of FastAPI's own last-resort handler).
            logger.exception("forwarding failed", extra={"route": route.path})
            if started:
                raise
            await _send_error(send, ServiceError("Internal error; see the gateway log."))

    async def _forward(
        self, route: PublicRoute, gateway: Gateway, scope: Scope, receive: Receive, send: Send
    ) -> None:
        presented: bytes | None = None
        keys_sent = 0
        content_type: bytes | None = None
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == _API_KEY:
                presented = value
                keys_sent += 1
            elif name == _CONTENT_TYPE:
                content_type = value
            elif name == _CONTENT_LENGTH:
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidInput("Content-Length is not a number.") from None
        headers = {REQUEST_ID_HEADER: current_request_id() or ""}
        role = _ROLES.get(route.access)
        if role is not None:
            principal = authorise(gateway, presented, role, copies=keys_sent)
            headers[CALLER_ROLE_HEADER] = principal.role.name.lower()

        body: bytes | None = None
        if route.method == "POST":
            settings = gateway.settings
            media = content_type.decode("latin-1") if content_type else None
            check_json_media_type(media)
            limit = settings.max_batch_body_bytes if route.batch else settings.max_body_bytes
            body = await read_body(
                receive, declared=declared, limit=limit, timeout_s=settings.body_read_timeout_s
            )
            # Every body route takes JSON; a client that sent no type still means JSON.
            headers["Content-Type"] = media or _JSON
        query: bytes = scope.get("query_string", b"")
        target = f"{route.path}?{query.decode('latin-1')}" if query else route.path
        reply = await gateway.upstreams[route.upstream or ""].call(
            route.method, target, body=body, headers=headers, control=route.control
        )
        extra = [] if reply.retry_after is None else [(b"retry-after", reply.retry_after)]
        await _send(send, reply.status, reply.body, reply.content_type, extra)
