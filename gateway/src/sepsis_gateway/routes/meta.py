"""The gateway's own descriptive routes: index, health, OpenAPI and Swagger UI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from sepsis_gateway.routes.table import PUBLIC_ROUTES, Access
from sepsis_gateway.schemas import Endpoint, Health, Index, UpstreamHealth
from sepsis_gateway.state import GatewayDep
from sepsis_gateway.upstream import UpstreamStatus
from sepsis_shared.errors import NotFound

API_NAME = "Sepsis early-warning API"

router = APIRouter(tags=["gateway"])


@router.get("/", response_model=Index)
async def index(gateway: GatewayDep) -> Index:
    """Name, version and the list of endpoints."""
    return Index(
        name=API_NAME,
        version=gateway.version,
        docs="/docs",
        openapi="/openapi.json",
        endpoints=[
            Endpoint(
                path=r.path,
                method=r.method,
                auth=Access(r.access).value,
                summary=r.summary,
            )
            for r in PUBLIC_ROUTES
        ],
    )


@router.get("/health", response_model=Health)
async def health(gateway: GatewayDep) -> Health:
    """Gateway liveness (always 200 while it runs) and each upstream's last known state."""
    upstreams = {
        name: UpstreamHealth.model_validate(u.health()) for name, u in gateway.upstreams.items()
    }
    return Health(
        status="healthy",
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        service="gateway",
        version=gateway.version,
        upstreams=upstreams,
        unavailable=[
            name for name, u in gateway.upstreams.items() if u.status is not UpstreamStatus.UP
        ],
    )


@router.get(
    "/openapi.json",
    response_class=Response,
    responses={200: {"description": "OpenAPI 3 document", "content": {"application/json": {}}}},
)
async def openapi_document(gateway: GatewayDep) -> Response:
    """The merged OpenAPI document of the whole API."""
    return Response(content=await gateway.docs.document(), media_type="application/json")


# Swagger UI's assets are served by the gateway itself: hospital networks often have no route
# to a public CDN, and the docs page must work there too.
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
DOCS_ASSETS_PREFIX = "/docs/assets"


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui() -> HTMLResponse:
    """Swagger UI over the merged document."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{API_NAME} - Swagger UI",
        swagger_js_url=f"{DOCS_ASSETS_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS_PREFIX}/favicon-32x32.png",
    )


@router.get(f"{DOCS_ASSETS_PREFIX}/{{name}}", include_in_schema=False)
async def swagger_ui_asset(name: str) -> FileResponse:
    """One of Swagger UI's static files (a fixed list; nothing else on disk is reachable)."""
    media_type = DOCS_ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"No documentation asset named {name!r}.")
    path = Path(str(swagger_ui_path / name))
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "max-age=86400"})
