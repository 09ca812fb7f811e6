"""`GET /performance`: the gateway's own figures and each upstream's."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from fastapi import APIRouter

from sepsis_gateway.cds_state import CdsDep
from sepsis_gateway.schemas import Performance
from sepsis_gateway.state import ClientKey, GatewayDep
from sepsis_gateway.upstream import Upstream
from sepsis_shared.errors import ERROR_RESPONSES, ServiceError
from sepsis_shared.requestid import current_request_id

# An upstream that cannot hand over its figures quickly is reported as unavailable.
UPSTREAM_FIGURES_TIMEOUT_S = 3.0

router = APIRouter(tags=["gateway"])


async def _upstream_figures(upstream: Upstream) -> dict[str, Any]:
    try:
        figures = await upstream.get_json(
            "/performance",
            timeout_s=UPSTREAM_FIGURES_TIMEOUT_S,
            request_id=current_request_id(),
        )
    except ServiceError as exc:
        return {"status": "unavailable", "code": exc.code, "reason": exc.message}
    if not isinstance(figures, dict):
        return {"status": "unavailable", "code": "upstream_error", "reason": "not an object"}
    return {"status": "available", **figures}


@router.get(
    "/performance",
    response_model=Performance,
    responses={k: v for k, v in ERROR_RESPONSES.items() if k in (401, 429)},
)
async def performance(gateway: GatewayDep, cds: CdsDep, _: ClientKey) -> Performance:
    """Counts, error rates and latency p50/p95/p99 per route since start, each upstream's, and
    the CDS Hooks feedback."""
    names = list(gateway.upstreams)
    results = await asyncio.gather(*(_upstream_figures(gateway.upstreams[n]) for n in names))
    try:
        feedback = await cds.feedback.summary()
    except (redis.RedisError, OSError):
        feedback = {"status": "unavailable", "reason": "the feedback store (Redis) is unavailable"}
    return Performance.model_validate(
        {
            "service": "gateway",
            **gateway.metrics.snapshot(),
            "upstreams": dict(zip(names, results, strict=True)),
            "cds_feedback": feedback,
        }
    )
