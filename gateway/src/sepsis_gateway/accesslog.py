"""One JSON line per request, and the per-route figures behind `/performance`.

Pure ASGI (no BaseHTTPMiddleware): it only watches the response status go by. It logs the
route, method, status, duration, upstream and body size; never headers, keys or bodies.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sepsis_gateway.routes.table import ROUTES_BY_PATH, UNMATCHED
from sepsis_gateway.state import STATE_KEY, Gateway

logger = logging.getLogger("sepsis.gateway.access")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            ms = (time.perf_counter() - started) * 1000
            route = ROUTES_BY_PATH.get(scope["path"])
            name = route.path if route else UNMATCHED
            gateway: Gateway | None = scope.get("state", {}).get(STATE_KEY)
            if gateway is not None:
                gateway.metrics.record_request(name, status, ms)
            if logger.isEnabledFor(logging.INFO):
                bytes_in = None
                for key, value in scope["headers"]:
                    if key == b"content-length":
                        bytes_in = int(value) if value.isdigit() else None
                        break
                logger.info(
                    "%s %s %d %.1f ms",
                    scope["method"],
                    name,
                    status,
                    ms,
                    extra={
                        "route": name,
                        "method": scope["method"],
                        "status": status,
                        "duration_ms": round(ms, 3),
                        "upstream": route.upstream if route else None,
                        "bytes_in": bytes_in,
                    },
                )
