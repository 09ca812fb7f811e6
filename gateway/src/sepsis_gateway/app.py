"""The gateway application: `create_app` and its lifespan.

Run with `uvicorn sepsis_gateway.app:create_app --factory --port 8000`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version as package_version

from fastapi import FastAPI
from starlette.types import ASGIApp

from sepsis_gateway.auth import KeyRing
from sepsis_gateway.cds_state import CDS_STATE_KEY, Cds, open_cds
from sepsis_gateway.config import GatewaySettings
from sepsis_gateway.metrics import Metrics, access_log_fields, access_logger
from sepsis_gateway.monitor import watch_upstreams
from sepsis_gateway.openapi import ApiDocs
from sepsis_gateway.proxy import ForwardMiddleware
from sepsis_gateway.ratelimit import RateLimiter
from sepsis_gateway.routes import cds, fhir, meta, performance
from sepsis_gateway.routes.meta import API_NAME
from sepsis_gateway.routes.table import GENAI, ML, PUBLIC_ROUTES, UPSTREAM_LABELS
from sepsis_gateway.state import STATE_KEY, Gateway
from sepsis_gateway.upstream import (
    CONTROL_MAX_CONNECTIONS,
    CircuitBreaker,
    Upstream,
    open_session,
)
from sepsis_shared.metrics import RouteMetricsMiddleware
from sepsis_shared.requestid import RequestIdMiddleware
from sepsis_shared.service import MissingConfiguration, setup_service_app

DESCRIPTION = (
    "Sepsis risk assessment for hospital backends. Send a client key in `X-API-Key` "
    "(the reload routes need an admin key). Every error is one envelope: "
    '`{"error": {"code", "message", "request_id", "details"}}`. Send `X-Request-ID` to '
    "correlate a call with the logs; it is echoed on every answer."
)


def _check_secrets(settings: GatewaySettings) -> KeyRing:
    if not settings.client_keys():
        raise MissingConfiguration(
            "gateway refuses to start: no client API key configured. Set API_KEY (one key) "
            "or API_KEYS (comma-separated, several valid at once for rotation)."
        )
    if settings.service_token is None or not settings.service_token.get_secret_value().strip():
        raise MissingConfiguration(
            "gateway refuses to start: set SERVICE_TOKEN to the internal token that "
            "ml-service and genai-service require."
        )
    return KeyRing(client_keys=settings.client_keys(), admin_keys=settings.admin_keys())


def create_app(settings: GatewaySettings | None = None) -> ASGIApp:
    """Build the gateway; raises MissingConfiguration when keys or the token are missing."""
    settings = settings or GatewaySettings()
    keys = _check_secrets(settings)
    token = settings.service_token.get_secret_value().strip() if settings.service_token else ""
    version = package_version("sepsis-gateway")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Gateway | Cds]]:
        async with AsyncExitStack() as stack:
            upstreams: dict[str, Upstream] = {}
            for name, url, connect_s, total_s in (
                (ML, settings.ml_service_url, settings.ml_connect_timeout_s, settings.ml_timeout_s),
                (
                    GENAI,
                    settings.genai_service_url,
                    settings.genai_connect_timeout_s,
                    settings.genai_timeout_s,
                ),
            ):
                session = await stack.enter_async_context(
                    open_session(max_connections=settings.upstream_max_connections, token=token)
                )
                control = await stack.enter_async_context(
                    open_session(max_connections=CONTROL_MAX_CONNECTIONS, token=token)
                )
                upstreams[name] = Upstream(
                    name=name,
                    label=UPSTREAM_LABELS[name],
                    base_url=url,
                    session=session,
                    control_session=control,
                    connect_timeout_s=connect_s,
                    total_timeout_s=total_s,
                    breaker=CircuitBreaker(
                        threshold=settings.circuit_failure_threshold,
                        cooldown_s=settings.circuit_cooldown_s,
                    ),
                    metrics=metrics,
                )
            docs = ApiDocs(
                base=app.openapi,
                upstreams=upstreams,
                routes=PUBLIC_ROUTES,
                ttl_s=settings.openapi_cache_ttl_s,
                fetch_timeout_s=max(settings.health_probe_timeout_s, 5.0),
            )
            gateway = Gateway(
                settings=settings,
                version=version,
                keys=keys,
                limiter=RateLimiter(
                    per_minute=settings.rate_limit_per_minute,
                    capacity=settings.rate_limit_capacity(),
                ),
                metrics=metrics,
                upstreams=upstreams,
                docs=docs,
            )
            probe = asyncio.create_task(
                watch_upstreams(
                    upstreams,
                    docs,
                    interval_s=settings.health_probe_interval_s,
                    timeout_s=settings.health_probe_timeout_s,
                ),
                name="gateway-upstream-probe",
            )

            async def stop_probe() -> None:
                probe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probe

            stack.push_async_callback(stop_probe)
            cds_state = await stack.enter_async_context(open_cds(settings))
            yield {STATE_KEY: gateway, CDS_STATE_KEY: cds_state}

    app = FastAPI(
        title=API_NAME,
        version=version,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # The gateway keeps its own figures (/performance) and access log; FastAPI's native
        # OpenTelemetry hooks would only re-check their providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(meta.router)
    app.include_router(performance.router)
    app.include_router(fhir.router)
    app.include_router(cds.router)
    # Logging and the error envelope; the request ids come from the front below.
    setup_service_app(app, service="gateway", settings=settings, request_ids=False)
    # The forwarded routes (the hot path) are answered by pure ASGI ahead of FastAPI and its
    # middleware stack; FastAPI serves the rest. The access log and figures wrap both, the
    # request-id middleware wraps everything.
    return RequestIdMiddleware(
        RouteMetricsMiddleware(
            ForwardMiddleware(app),
            metrics=metrics,
            access_log=access_logger,
            log_fields=access_log_fields,
        )
    )
