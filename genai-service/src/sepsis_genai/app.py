"""The GenAI service app: `uvicorn sepsis_genai.app:create_app --factory --port 8002`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from sepsis_genai.cache import AnswerCache
from sepsis_genai.config import GenAISettings
from sepsis_genai.guardrail import load_guardrail_config
from sepsis_genai.llm import LLMClient, build_openai_client
from sepsis_genai.pipeline import GuardrailHolder, Pipeline, pipeline_version
from sepsis_genai.routes import classify, guardrail, health, performance
from sepsis_genai.routes.deps import STATE_KEY, Readiness, Services
from sepsis_genai.tokens import TokenBudget
from sepsis_shared.metrics import RouteMetrics, RouteMetricsMiddleware
from sepsis_shared.service import health_router, setup_service_app

SERVICE = "genai-service"


def create_app(settings: GenAISettings | None = None) -> FastAPI:
    """Build the app; every long-lived resource is opened in the lifespan."""
    settings = settings or GenAISettings()
    # The SDK's HTTP client logs every call at INFO; our own line per LLM call says more.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    target = settings.llm_target()  # fails fast, naming what to set, on an incomplete provider
    readiness = Readiness()
    metrics = RouteMetrics({"/openapi.json", "/docs"})

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            config = await asyncio.to_thread(load_guardrail_config, settings.guardrail_config_path)
            holder = GuardrailHolder(config, path=settings.guardrail_config_path)
            cache = AnswerCache(
                url=settings.redis_url if settings.cache_enabled else None,
                namespace=settings.cache_namespace,
                ttl_s=settings.cache_ttl_s,
                timeout_s=settings.redis_timeout_s,
                retry_interval_s=settings.cache_retry_interval_s,
            )
            stack.push_async_callback(cache.aclose)
            await cache.check()
            llm: LLMClient | None = None
            if target is not None:
                llm = LLMClient(
                    client=build_openai_client(
                        target,
                        max_connections=settings.max_concurrency,
                        read_timeout_s=settings.deadline_s,
                    ),
                    target=target,
                    temperature=settings.temperature,
                    max_output_tokens=settings.max_output_tokens,
                    deadline_s=settings.deadline_s,
                    max_retries=settings.max_retries,
                    retry_base_s=settings.retry_base_s,
                    retry_max_s=settings.retry_max_s,
                    max_concurrency=settings.max_concurrency,
                    max_queued=settings.max_queued,
                    budget=TokenBudget(settings.daily_token_budget),
                )
                stack.push_async_callback(llm.aclose)
                await llm.warm_up()
            pipeline = Pipeline(
                guardrail=holder,
                cache=cache,
                llm=llm,
                max_notes_chars=settings.max_notes_chars,
                fail_on_llm_error=settings.fail_on_llm_error,
                batch_concurrency=settings.batch_concurrency,
            )
            services = Services(
                settings=settings,
                pipeline=pipeline,
                cache=cache,
                llm=llm,
                guardrail=holder,
                metrics=metrics,
            )
            readiness.reason = None
            try:
                yield {STATE_KEY: services}
            finally:
                readiness.reason = "shutting down"

    app = FastAPI(
        title="Sepsis early warning: GenAI service",
        version=pipeline_version(),
        description="LLM sepsis assessment of trends and nursing notes under a deterministic "
        "clinical guardrail, with a Redis cache of validated LLM answers.",
        lifespan=lifespan,
    )
    routers = (
        classify.build_router(max_batch=settings.max_batch),
        health.router,
        guardrail.router,
        performance.router,
        health_router(service=SERVICE, version=pipeline_version(), readiness=readiness),
    )
    for router in routers:
        app.include_router(router)
        metrics.track(getattr(route, "path", "") for route in router.routes)
    # Added before the shared middlewares so that the request id is set when it logs.
    app.add_middleware(
        RouteMetricsMiddleware,
        metrics=metrics,
        access_log=logging.getLogger("sepsis_genai.access"),
    )
    setup_service_app(app, service=SERVICE, settings=settings)
    return app
