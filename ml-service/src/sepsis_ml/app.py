"""ml-service: the hybrid ML sepsis classifier. Run with
`uvicorn sepsis_ml.app:create_app --factory --port 8001`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from fastapi import FastAPI
from fastapi.routing import APIRoute

from sepsis_ml.config import MLSettings
from sepsis_ml.metrics import ServiceMetrics
from sepsis_ml.mlconfig import ConfigStore
from sepsis_ml.model import SepsisModel
from sepsis_ml.routes import classify, config, performance
from sepsis_ml.routes.deps import STATE_KEY
from sepsis_ml.runtime import InferenceRuntime, Readiness, ServiceState, warm_up
from sepsis_shared.metrics import RouteMetricsMiddleware
from sepsis_shared.service import health_router, setup_service_app

SERVICE = "ml-service"
logger = logging.getLogger("sepsis_ml.app")


def _package_version() -> str:
    try:
        return version("sepsis-ml")
    except PackageNotFoundError:
        return "0.0.0"


GC_FIRST_THRESHOLD: Final = 100_000
"""Net allocations between two young-generation collections (Python's default: 700)."""


def create_app(settings: MLSettings | None = None) -> FastAPI:
    """Build the app; the lifespan loads the model and the config and warms them up."""
    settings = settings if settings is not None else MLSettings()
    readiness = Readiness()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, ServiceState]]:
        async with AsyncExitStack() as stack:
            threads = settings.threads()
            executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inference")
            stack.push_async_callback(asyncio.to_thread, executor.shutdown, wait=True)
            loop = asyncio.get_running_loop()
            # Each model call runs on the pool thread that makes it: one row or a batch, its
            # rows are then summed exactly as they would be alone.
            model = await loop.run_in_executor(
                executor,
                lambda: SepsisModel.load(settings.model_dir, threads=1),
            )
            configs = await loop.run_in_executor(
                executor, lambda: ConfigStore.open(settings.config_path)
            )
            state = ServiceState(
                settings=settings,
                model=model,
                configs=configs,
                runtime=InferenceRuntime(
                    model=model, executor=executor, threads=threads, stats=metrics.inference
                ),
                metrics=metrics,
            )
            readiness.reason = "warming up: the model is loaded"
            await loop.run_in_executor(executor, warm_up, state)
            # Everything alive now (modules, model, config) lives as long as the process: move
            # it out of the collector's sight, or every full collection triggered by a large
            # batch's allocations walks it all again.
            gc.freeze()
            # A batch makes a few hundred thousand short-lived objects, none of them in a
            # reference cycle (they go as soon as the answer is written); with the default
            # thresholds the collector runs about 30 times per 1,000-patient batch and walks
            # the whole batch again every few batches. Cyclic garbage is still collected, after
            # GC_FIRST_THRESHOLD allocations instead of 700.
            thresholds = gc.get_threshold()
            gc.set_threshold(GC_FIRST_THRESHOLD, 50, 100)
            stack.callback(gc.set_threshold, *thresholds)
            readiness.reason = None
            logger.info(
                "ml-service ready",
                extra={
                    "model": model.name,
                    "model_version": model.version,
                    "config_version": configs.current.config.version,
                    "threads": threads,
                },
            )
            try:
                yield {STATE_KEY: state}
            finally:
                readiness.reason = "shutting down"

    service_version = _package_version()
    app = FastAPI(
        title="Sepsis early warning: ml-service",
        version=service_version,
        description="Hybrid ML pathway: a gradient-boosted model served with onnxruntime, "
        "blended with qSOFA, SIRS, NEWS2, SOFA and the Sepsis-3 septic-shock criteria.",
        lifespan=lifespan,
    )
    routers = (
        health_router(service=SERVICE, version=service_version, readiness=readiness),
        classify.classify_router(max_batch=settings.max_batch),
        config.router,
        performance.router,
    )
    for router in routers:
        app.include_router(router)
        metrics.track(route.path for route in router.routes if isinstance(route, APIRoute))
    if app.openapi_url:
        metrics.track([app.openapi_url])
    setup_service_app(app, service=SERVICE, settings=settings)
    # Outermost, so refused and failed calls are counted and timed too.
    app.add_middleware(RouteMetricsMiddleware, metrics=metrics)
    return app
