"""What handlers receive: the long-lived services opened in the lifespan, and body reading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request

from sepsis_genai.cache import AnswerCache
from sepsis_genai.config import GenAISettings
from sepsis_genai.llm import LLMClient
from sepsis_genai.pipeline import GuardrailHolder, Pipeline
from sepsis_shared.body import decode_json, read_json_request
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
    """The request body decoded as JSON (`sepsis_shared.body`: 415, 413 and 422 as there)."""
    return decode_json(await read_json_request(request, max_bytes))
