"""POST /classify and POST /classify-batch: the hybrid assessment of one or many patients."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from sepsis_ml.routes.deps import StateDep
from sepsis_ml.runtime import score_batch, score_single
from sepsis_ml.schemas import BatchResponse, MLAssessment
from sepsis_shared.body import read_json_request
from sepsis_shared.errors import ERROR_RESPONSES
from sepsis_shared.patient import patient_batch_request_openapi, patient_request_openapi
from sepsis_shared.requestid import current_request_id

JSON = "application/json"


def classify_router(*, max_batch: int) -> APIRouter:
    """The classification routes (the batch limit goes into the OpenAPI document)."""
    router = APIRouter(tags=["classify"])

    @router.post(
        "/classify",
        response_model=MLAssessment,
        responses=ERROR_RESPONSES,
        openapi_extra=patient_request_openapi(),
        summary="Assess one patient (hybrid ML)",
    )
    async def classify(request: Request, state: StateDep) -> Response:
        """Risk score, priority, clinical scores and drivers for one patient, in either form."""
        started = time.perf_counter()
        body = await read_json_request(request, state.settings.max_body_bytes)
        content = await state.runtime.run(
            score_single, state, body, request_id=current_request_id(), started=started
        )
        return Response(content, media_type=JSON)

    @router.post(
        "/classify-batch",
        response_model=BatchResponse,
        responses=ERROR_RESPONSES,
        openapi_extra=patient_batch_request_openapi(max_batch),
        summary="Assess many patients with one model call",
    )
    async def classify_batch(request: Request, state: StateDep) -> Response:
        """Up to the configured maximum of patients; a bad patient yields an error entry."""
        started = time.perf_counter()
        body = await read_json_request(request, state.settings.max_body_bytes)
        content = await state.runtime.run(
            score_batch, state, body, request_id=current_request_id(), started=started
        )
        return Response(content, media_type=JSON)

    return router
