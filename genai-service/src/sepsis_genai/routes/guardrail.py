"""`GET /genai-guardrail/thresholds` and `POST /genai-guardrail/reload`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from sepsis_genai.guardrail import GuardrailConfigError, guardrail_public_view
from sepsis_genai.routes.deps import ServicesDep
from sepsis_genai.schemas import ReloadResult
from sepsis_shared.errors import ERROR_RESPONSES, InvalidInput
from sepsis_shared.service import AdminCaller

logger = logging.getLogger("sepsis_genai.guardrail")

router = APIRouter(tags=["genai"])


@router.get("/genai-guardrail/thresholds", responses={401: ERROR_RESPONSES[401]})
async def guardrail_thresholds(services: ServicesDep) -> dict[str, Any]:
    """The guardrail config in force: its version, every rule, threshold and wording."""
    return guardrail_public_view(services.guardrail.config)


@router.post(
    "/genai-guardrail/reload",
    response_model=ReloadResult,
    responses={k: v for k, v in ERROR_RESPONSES.items() if k in (401, 403, 422)},
    dependencies=[AdminCaller],
)
async def guardrail_reload(services: ServicesDep) -> ReloadResult:
    """Re-read and validate the guardrail config; a bad file is rejected and the old one stays."""
    holder = services.guardrail
    current = holder.config.version
    try:
        previous, fresh = await holder.reload()
    except GuardrailConfigError as exc:
        logger.warning("guardrail reload rejected; version %s stays in force", current)
        raise InvalidInput(
            f"The guardrail config was rejected; version {current} stays in force. {exc.message}",
            details={"problems": list(exc.problems), "active_version": current},
        ) from None
    logger.info("guardrail reloaded: %s -> %s", previous.version, fresh.version)
    return ReloadResult(
        status="reloaded",
        version=fresh.version,
        previous_version=previous.version,
        rules=len(fresh.rules),
    )
