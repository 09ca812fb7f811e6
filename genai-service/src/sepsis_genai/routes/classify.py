"""`POST /genai-classify` and `POST /genai-classify-batch`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response

from sepsis_genai.routes.deps import ServicesDep, read_json_body
from sepsis_genai.schemas import BatchResponse, GenAIAssessment
from sepsis_shared.errors import ERROR_RESPONSES
from sepsis_shared.patient import (
    batch_items,
    parse_patient,
    patient_batch_request_openapi,
    patient_request_openapi,
)
from sepsis_shared.requestid import current_request_id

_ERRORS: dict[int | str, dict[str, Any]] = {
    k: v for k, v in ERROR_RESPONSES.items() if k in (401, 413, 422, 503)
}


def build_router(*, max_batch: int) -> APIRouter:
    """The classify routes (the batch limit is part of their documentation)."""
    router = APIRouter(tags=["genai"])

    @router.post(
        "/genai-classify",
        response_model=GenAIAssessment,
        responses=_ERRORS,
        openapi_extra=patient_request_openapi(),
    )
    async def genai_classify(request: Request, services: ServicesDep) -> Response:
        """Assess one patient: LLM (or offline rules) under the deterministic clinical guardrail."""
        raw = await read_json_body(request, max_bytes=services.settings.max_body_bytes)
        patient = parse_patient(raw, limits=services.pipeline.input_limits)
        assessment = await services.pipeline.assess(patient)
        return Response(assessment.model_dump_json(), media_type="application/json")

    @router.post(
        "/genai-classify-batch",
        response_model=BatchResponse,
        responses=_ERRORS,
        openapi_extra=patient_batch_request_openapi(max_batch),
    )
    async def genai_classify_batch(request: Request, services: ServicesDep) -> Response:
        """Assess many patients with bounded concurrency; per-patient errors at their index."""
        started = time.perf_counter()
        raw = await read_json_body(request, max_bytes=services.settings.max_body_bytes)
        items = batch_items(raw, max_items=services.settings.max_batch)
        results = await services.pipeline.assess_batch(items)
        body = BatchResponse(
            results=results,
            count=len(results),
            errors=sum(1 for r in results if not r.ok),
            processing_time_ms=round((time.perf_counter() - started) * 1000, 3),
            request_id=current_request_id(),
        )
        return Response(body.model_dump_json(), media_type="application/json")

    return router
