"""What handlers receive: the long-lived services opened in the lifespan, and body reading."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request

from sepsis_genai.cache import AnswerCache
from sepsis_genai.config import GenAISettings
from sepsis_genai.llm import LLMClient
from sepsis_genai.pipeline import GuardrailHolder, Pipeline
from sepsis_shared.errors import FieldError, InvalidInput, PayloadTooLarge
from sepsis_shared.metrics import RouteMetrics

STATE_KEY: Final = "genai"


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the handlers use, opened and closed by the lifespan."""

    settings: GenAISettings
    pipeline: Pipeline
    cache: AnswerCache
    llm: LLMClient | None
    guardrail: GuardrailHolder
    metrics: RouteMetrics


async def get_services(request: Request) -> Services:
    """The lifespan's services (`async`: FastAPI would run a plain `def` on a worker thread,
    a round trip to the thread pool on every request)."""
    services: Services = getattr(request.state, STATE_KEY)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class Readiness:
    """The reason the service is not ready, None once the lifespan has opened everything."""

    def __init__(self) -> None:
        self.reason: str | None = "starting"

    def __call__(self) -> str | None:
        return self.reason


async def read_json_body(request: Request, *, max_bytes: int) -> object:
    """The request body decoded as JSON; 413 past `max_bytes`, 422 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(
            f"The body is larger than {max_bytes} bytes.", details={"max_bytes": max_bytes}
        )
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(
                f"The body is larger than {max_bytes} bytes.", details={"max_bytes": max_bytes}
            )
    if not body.strip():
        raise InvalidInput.for_fields(
            [FieldError(field="body", message="expected a JSON object, got an empty body")]
        )
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise InvalidInput.for_fields(
            [FieldError(field="body", message=f"the body is not valid JSON{where}")]
        ) from None
