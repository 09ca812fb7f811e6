"""What every service app has in common: logging, request ids, the error envelope, the
internal service token and the health routes."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from sepsis_shared.errors import Forbidden, error_body, install_error_handlers
from sepsis_shared.logs import configure_logging
from sepsis_shared.requestid import RequestIdMiddleware
from sepsis_shared.settings import (
    CALLER_ROLE_HEADER,
    SERVICE_TOKEN_HEADER,
    BaseServiceSettings,
    InternalServiceSettings,
)

ReadinessCheck = Callable[[], str | None]
"""Returns None when ready, else the reason it is not."""

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class MissingConfiguration(RuntimeError):
    """A required setting is absent; the message says what to set."""


class HealthStatus(BaseModel):
    status: str
    service: str
    version: str
    reason: str | None = None


def health_router(*, service: str, version: str, readiness: ReadinessCheck) -> APIRouter:
    """`/healthz` (process alive) and `/readyz` (ready to serve, else 503 with the reason)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=HealthStatus)
    async def healthz() -> HealthStatus:
        """Liveness: the process answers."""
        return HealthStatus(status="ok", service=service, version=version)

    @router.get("/readyz", response_model=HealthStatus, responses={503: {"model": HealthStatus}})
    async def readyz() -> JSONResponse:
        """Readiness: everything needed to serve is loaded and warm."""
        reason = readiness()
        if reason is None:
            body = HealthStatus(status="ready", service=service, version=version)
            return JSONResponse(body.model_dump())
        envelope = error_body("not_ready", f"{service} is not ready: {reason}")
        envelope.update(
            HealthStatus(
                status="not_ready", service=service, version=version, reason=reason
            ).model_dump()
        )
        return JSONResponse(envelope, status_code=503)

    return router


async def require_admin_caller(request: Request) -> None:
    """Dependency of the admin routes: 403 unless the gateway said the caller holds an admin
    key (read from the request, not declared, so it stays out of the public documents)."""
    if request.headers.get(CALLER_ROLE_HEADER, "").strip().lower() != "admin":
        raise Forbidden("This route needs an admin key.")


AdminCaller = Depends(require_admin_caller)


class ServiceTokenMiddleware:
    """Refuse every call that lacks the gateway's internal token (health routes excepted)."""

    def __init__(self, app: ASGIApp, *, token: str, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        self.app = app
        self.token = token.encode()
        self.open_paths = frozenset(open_paths)
        self.header = SERVICE_TOKEN_HEADER.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name == self.header:
                given = value
                break
        if not hmac.compare_digest(given, self.token):
            response = JSONResponse(
                error_body(
                    "unauthorized",
                    "This service accepts calls only through the gateway "
                    f"(missing or wrong {SERVICE_TOKEN_HEADER}).",
                ),
                status_code=401,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def setup_service_app(
    app: FastAPI, *, service: str, settings: BaseServiceSettings, request_ids: bool = True
) -> None:
    """Configure logging, install the error handlers and the middlewares on a new app.

    `request_ids=False` leaves out the request-id middleware, for an app that is wrapped in
    one from outside (the gateway's forwarding path runs ahead of FastAPI).
    Raises MissingConfiguration when an internal service has no service token configured.
    """
    configure_logging(
        service=service, level=settings.log_level, json_lines=settings.log_format == "json"
    )
    install_error_handlers(app)
    if isinstance(settings, InternalServiceSettings) and settings.require_service_token:
        if settings.service_token is None or not settings.service_token.get_secret_value():
            raise MissingConfiguration(
                f"{service} refuses to start: set SERVICE_TOKEN to the internal token the "
                "gateway sends (or REQUIRE_SERVICE_TOKEN=false for a local experiment)."
            )
        app.add_middleware(ServiceTokenMiddleware, token=settings.service_token.get_secret_value())
    if request_ids:
        # Added last so it is outermost: even a refused call gets a request id.
        app.add_middleware(RequestIdMiddleware)
