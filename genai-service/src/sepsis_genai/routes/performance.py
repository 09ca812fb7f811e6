"""`GET /performance`: route latencies and counts, cache hit rate, LLM call counts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sepsis_genai.routes.deps import ServicesDep
from sepsis_shared.errors import ERROR_RESPONSES

router = APIRouter(tags=["genai"])


@router.get("/performance", responses={401: ERROR_RESPONSES[401]})
async def performance(services: ServicesDep) -> dict[str, Any]:
    """Per-route counts, error rates and latency p50/p95/p99 since start; cache and LLM figures."""
    cache = services.cache
    llm = services.llm
    return {
        "service": "genai-service",
        **services.metrics.snapshot(),
        "cache": {
            "state": cache.state,
            "hits": cache.hits,
            "misses": cache.misses,
            "errors": cache.errors,
            "writes": cache.writes,
            "hit_rate": cache.hit_rate,
        },
        "llm": {
            "provider": services.pipeline.provider,
            "model": services.pipeline.model_label,
            **(llm.stats.as_dict() if llm is not None else {}),
            "token_budget": llm.budget.as_dict() if llm is not None else None,
        },
    }
