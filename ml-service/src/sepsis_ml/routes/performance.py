"""GET /performance: request and inference figures of this process since it started."""

from __future__ import annotations

from fastapi import APIRouter

from sepsis_ml.routes.deps import StateDep
from sepsis_ml.schemas import PerformanceView
from sepsis_shared.errors import ERROR_RESPONSES

SERVICE = "ml-service"
router = APIRouter(tags=["operations"])


@router.get("/performance", response_model=PerformanceView, responses=ERROR_RESPONSES)
async def performance(state: StateDep) -> PerformanceView:
    """Counts, error counts and latency p50/p95/p99 per route; rows scored and batch sizes."""
    figures = state.metrics.snapshot()
    return PerformanceView.model_validate(
        {
            "service": SERVICE,
            **figures,
            "inference_threads": state.runtime.threads,
            "model": state.model_info,
        }
    )
