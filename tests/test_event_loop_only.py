"""No request pays a round trip to a worker thread it did not ask for.

FastAPI runs a plain `def` route handler or dependency on its thread pool: a hand-off to a
worker thread and back on every request (about 0.15 ms of a 0.8 ms `/classify` on the
reference machine). Every handler and dependency of the three services is `async`; the CPU
work that must leave the event loop (ml-service's scoring) goes to its own bounded pool
explicitly. This walks every route of each app and names any synchronous callable.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from sepsis_gateway.app import create_app as gateway_app
from sepsis_gateway.config import GatewaySettings
from sepsis_genai.app import create_app as genai_app
from sepsis_genai.config import GenAISettings
from sepsis_ml.app import create_app as ml_app
from sepsis_ml.config import MLSettings

TOKEN = "event-loop-test-token-0123456789"


def _fastapi(app: Any) -> FastAPI:
    """The FastAPI app inside the pure-ASGI wrappers (the gateway wraps its app)."""
    while not isinstance(app, FastAPI):
        app = app.app
    return app


def _gateway() -> Any:
    settings = GatewaySettings.model_validate(
        {
            "api_keys": "event-loop-client-key-0123456789",
            "admin_api_keys": "event-loop-admin-key-0123456789",
            "service_token": TOKEN,
            "log_format": "text",
        }
    )
    return gateway_app(settings)


APPS: dict[str, Callable[[], Any]] = {
    "gateway": _gateway,
    "ml-service": lambda: ml_app(MLSettings(SERVICE_TOKEN=TOKEN, LOG_FORMAT="text")),
    "genai-service": lambda: genai_app(GenAISettings(SERVICE_TOKEN=TOKEN, LOG_FORMAT="text")),
}
"""Each service's app, built only when its test runs."""


def _is_async(call: Any) -> bool:
    # a function, or an instance used as a dependency (FastAPI's security schemes)
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def _sync_callables(dependant: Dependant) -> Iterator[str]:
    if dependant.call is not None and not _is_async(dependant.call):
        yield getattr(dependant.call, "__qualname__", repr(dependant.call))
    for sub in dependant.dependencies:
        yield from _sync_callables(sub)


@pytest.mark.parametrize("service", list(APPS))
def test_every_handler_and_dependency_runs_on_the_event_loop(service: str) -> None:
    app = _fastapi(APPS[service]())
    # every route as served, the included routers' own dependencies counted
    routes = [r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, APIRoute)]
    assert len(routes) >= 3, f"{service}: the walk found only {len(routes)} routes"
    offenders = {
        f"{sorted(r.methods or ())} {r.path}": sorted(set(_sync_callables(r.dependant)))
        for r in routes
    }
    offenders = {route: names for route, names in offenders.items() if names}
    assert offenders == {}, f"{service}: synchronous callables run on the thread pool"


def test_the_walk_finds_a_synchronous_dependency() -> None:
    """The check itself: a `def` dependency is reported."""
    from fastapi import Depends

    def plain() -> int:
        return 1

    app = FastAPI()

    @app.get("/x")
    async def handler(value: int = Depends(plain)) -> int:
        return value

    route = next(r for r in app.routes if isinstance(r, APIRoute))
    assert list(_sync_callables(route.dependant)) == [plain.__qualname__]
