"""The forwarded routes: same path upstream, body passed as bytes, answer passed back as is.

Only the content type, the request id and the internal service token go upstream; the client's
API key and every other header stay at the gateway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from sepsis_gateway.routes.table import UPSTREAM_LABELS, Access, PublicRoute
from sepsis_gateway.state import get_gateway, require_admin, require_client
from sepsis_shared.errors import ErrorEnvelope, InvalidInput, PayloadTooLarge
from sepsis_shared.requestid import REQUEST_ID_HEADER, current_request_id

Handler = Callable[[Request], Awaitable[Response]]

_GATEWAY_ERRORS = {
    401: "Missing or invalid API key",
    403: "The key lacks the admin role",
    413: "Body larger than the gateway accepts, or batch larger than the service accepts",
    429: "Rate limited; see `Retry-After`",
    502: "The upstream sent a broken answer",
    503: "The upstream is unavailable (down, or circuit open; see `Retry-After`)",
    504: "The upstream did not answer in time",
}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidInput("Content-Length is not a number.") from None
        if size > limit:
            raise PayloadTooLarge(
                f"Request body of {size} bytes exceeds the limit of {limit} bytes.",
                details={"limit_bytes": limit},
            )
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(
                f"Request body exceeds the limit of {limit} bytes.",
                details={"limit_bytes": limit},
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _handler(route: PublicRoute) -> Handler:
    upstream_name = route.upstream
    assert upstream_name is not None
    path = route.path
    method = route.method
    has_body = method in ("POST", "PUT", "PATCH")

    async def forward(request: Request) -> Response:
        gateway = get_gateway(request)
        upstream = gateway.upstreams[upstream_name]
        headers = {REQUEST_ID_HEADER: current_request_id() or ""}
        body: bytes | None = None
        if has_body:
            settings = gateway.settings
            limit = settings.max_batch_body_bytes if route.batch else settings.max_body_bytes
            body = await read_body(request, limit)
            # Every body route takes JSON; a client that sent no type still means JSON.
            headers["Content-Type"] = request.headers.get("content-type") or "application/json"
        query = request.scope.get("query_string", b"")
        target = f"{path}?{query.decode('latin-1')}" if query else path
        reply = await upstream.call(method, target, body=body, headers=headers)
        return Response(content=reply.body, status_code=reply.status, headers=reply.headers)

    forward.__name__ = "forward_" + path.strip("/").replace("-", "_").replace("/", "_")
    return forward


def _responses(route: PublicRoute) -> dict[int | str, dict[str, Any]]:
    codes: list[int] = [502, 503, 504]
    if route.access is not Access.NONE:
        codes += [401, 429]
    if route.access is Access.ADMIN:
        codes.append(403)
    if route.method == "POST":
        codes += [413, 422]
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": "The service's answer", "content": {"application/json": {}}}
    }
    for code in sorted(codes):
        out[code] = {
            "model": ErrorEnvelope,
            "description": _GATEWAY_ERRORS.get(code, "Invalid input; `details` names each field"),
        }
    return out


def forward_router(routes: Sequence[PublicRoute]) -> APIRouter:
    """One route per forwarded public path."""
    router = APIRouter()
    for route in routes:
        if route.upstream is None:
            continue
        dependencies = {
            Access.NONE: [],
            Access.KEY: [Depends(require_client)],
            Access.ADMIN: [Depends(require_admin)],
        }[route.access]
        description = f"Forwarded to {UPSTREAM_LABELS[route.upstream]}."
        if route.access is Access.ADMIN:
            description += " Needs an admin key (ADMIN_API_KEYS)."
        router.add_api_route(
            route.path,
            _handler(route),
            methods=[route.method],
            summary=route.summary,
            description=description,
            dependencies=dependencies,
            responses=_responses(route),
            response_class=Response,
            tags=[UPSTREAM_LABELS[route.upstream]],
        )
    return router
