"""Real local upstreams for the gateway tests: aiohttp servers on 127.0.0.1 that speak HTTP,
require the service token like the real services, and record what they received."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from asgi_lifespan import LifespanManager

from sepsis_gateway.app import create_app
from sepsis_gateway.config import GatewaySettings
from sepsis_gateway.state import STATE_KEY, Gateway

SERVICE_TOKEN = "internal-token-for-tests"
CLIENT_KEY = "client-key-current-0123456789"
ROTATED_KEY = "client-key-next-0123456789ab"
LEGACY_KEY = "legacy-single-key-0123456789"
ADMIN_KEY = "admin-key-1-0123456789abcdef"

ML_ROUTES = {
    ("POST", "/classify"),
    ("POST", "/classify-batch"),
    ("GET", "/config/current"),
    ("POST", "/reload-config"),
}
GENAI_ROUTES = {
    ("POST", "/genai-classify"),
    ("POST", "/genai-classify-batch"),
    ("GET", "/genai-health"),
    ("GET", "/genai-guardrail/thresholds"),
    ("POST", "/genai-guardrail/reload"),
}

ENV_NAMES = (
    "API_KEY",
    "API_KEYS",
    "ADMIN_API_KEYS",
    "SERVICE_TOKEN",
    "INTERNAL_SERVICE_TOKEN",
    "ML_SERVICE_URL",
    "GENAI_SERVICE_URL",
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_BURST",
    "MAX_BODY_BYTES",
    "MAX_BATCH_BODY_BYTES",
)


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Canned:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def service_openapi(name: str, routes: set[tuple[str, str]]) -> dict[str, Any]:
    """An OpenAPI document shaped like the ones the FastAPI services serve."""
    paths: dict[str, Any] = {}
    for method, path in sorted(routes):
        op: dict[str, Any] = {
            "summary": f"{name} {path}",
            "operationId": f"{name}_{path.strip('/').replace('/', '_').replace('-', '_')}",
            "responses": {
                "200": {
                    "description": "ok",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}
                    },
                },
                "401": {"description": "service-declared"},
                "403": {"description": "service-declared"},
                "422": {
                    "description": "bad",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorEnvelope"}
                        }
                    },
                },
            },
        }
        if method == "POST":
            op["requestBody"] = {
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/PatientInput"},
                        "examples": {"guide": {"value": {"HR": 110, "SBP": 95}}},
                    }
                }
            }
        paths.setdefault(path, {})[method.lower()] = op
    for internal in ("/healthz", "/readyz", "/performance"):
        paths[internal] = {"get": {"operationId": f"{name}_{internal[1:]}", "responses": {}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": name, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {
                # Same name in both services, different content: both must survive the merge.
                "Answer": {
                    "type": "object",
                    "title": f"{name} answer",
                    "properties": {"risk_score": {"type": "number"}},
                },
                "PatientInput": {"type": "object", "title": "PatientInput"},
                # Identical in both services: kept once.
                "ErrorEnvelope": {"type": "object", "title": "ErrorEnvelope"},
            }
        },
    }


class FakeService:
    """One upstream service on a real port."""

    def __init__(self, name: str, routes: set[tuple[str, str]], port: int | None = None) -> None:
        self.name = name
        self.routes = routes
        self.port = port or free_port()
        self.received: list[Received] = []
        self.canned: dict[str, Canned] = {}
        self.ready_status = 200
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def public_calls(self) -> list[Received]:
        return [r for r in self.received if r.path not in ("/readyz", "/openapi.json")]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(
            Received(
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        rid = request.headers.get("X-Request-ID", "")
        if request.path == "/readyz":
            return web.json_response({"status": "ready"}, status=self.ready_status)
        if request.headers.get("X-Service-Token") != SERVICE_TOKEN:
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "no token", "request_id": rid}},
                status=401,
            )
        canned = self.canned.get(request.path)
        if canned is not None:
            if canned.delay_s:
                await asyncio.sleep(canned.delay_s)
            return web.Response(
                body=canned.body,
                status=canned.status,
                content_type=canned.content_type,
                headers={"X-Request-ID": rid, **canned.headers},
            )
        if request.path == "/openapi.json":
            return web.json_response(service_openapi(self.name, self.routes))
        if request.path == "/performance":
            return web.json_response({"service": self.name, "routes": {"/classify": {"count": 7}}})
        if (request.method, request.path) not in self.routes:
            return web.json_response(
                {"error": {"code": "not_found", "message": "no route", "request_id": rid}},
                status=404,
            )
        answer = {
            "service": self.name,
            "path": request.path,
            "body_bytes": len(body),
            "request_id": rid,
        }
        return web.json_response(answer, headers={"X-Request-ID": rid})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_settings(ml_url: str, genai_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "api_keys": f"{CLIENT_KEY},{ROTATED_KEY}",
        "api_key": LEGACY_KEY,
        "admin_api_keys": ADMIN_KEY,
        "service_token": SERVICE_TOKEN,
        "ml_service_url": ml_url,
        "genai_service_url": genai_url,
        # The background probe is driven explicitly by the tests that need it.
        "health_probe_interval_s": 3600.0,
        "log_format": "text",
        "log_level": "WARNING",
    }
    values.update(overrides)
    return GatewaySettings.model_validate(values)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def ml() -> AsyncIterator[FakeService]:
    service = FakeService("ml", ML_ROUTES)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def genai() -> AsyncIterator[FakeService]:
    service = FakeService("genai", GENAI_ROUTES)
    await service.start()
    yield service
    await service.stop()


class Stack:
    """The gateway under test and its two fake upstreams (what each test file receives)."""

    token = SERVICE_TOKEN
    client_key = CLIENT_KEY
    rotated_key = ROTATED_KEY
    legacy_key = LEGACY_KEY
    admin_key = ADMIN_KEY
    ml_routes = ML_ROUTES
    genai_routes = GENAI_ROUTES

    def __init__(self, ml: FakeService, genai: FakeService) -> None:
        self.ml = ml
        self.genai = genai
        self._managers: list[LifespanManager] = []
        self._clients: list[httpx.AsyncClient] = []

    def settings(self, **overrides: Any) -> GatewaySettings:
        return make_settings(self.ml.url, self.genai.url, **overrides)

    async def start(self, **overrides: Any) -> httpx.AsyncClient:
        """Start the real gateway app with its lifespan, talking to it over ASGI."""
        manager = LifespanManager(create_app(self.settings(**overrides)))
        await manager.__aenter__()
        self._managers.append(manager)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://gateway"
        )
        self._clients.append(client)
        return client

    def gateway(self, index: int = -1) -> Gateway:
        """The lifespan state object of a started gateway (the last one by default)."""
        gateway: Gateway = self._managers[index]._state[STATE_KEY]
        return gateway

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        for manager in reversed(self._managers):
            await manager.__aexit__(None, None, None)

    @staticmethod
    def envelope(response: httpx.Response) -> dict[str, Any]:
        """The error envelope of a response, checked for its exact shape."""
        body = response.json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "request_id", "details"}, body
        error: dict[str, Any] = body["error"]
        return error

    @staticmethod
    def free_port() -> int:
        return free_port()

    @staticmethod
    def fake(name: str, routes: set[tuple[str, str]], port: int | None = None) -> FakeService:
        return FakeService(name, routes, port)

    @staticmethod
    def canned(**kwargs: Any) -> Canned:
        return Canned(**kwargs)


@pytest.fixture
async def stack(ml: FakeService, genai: FakeService) -> AsyncIterator[Stack]:
    s = Stack(ml, genai)
    yield s
    await s.close()
