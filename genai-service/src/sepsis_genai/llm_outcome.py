"""What one LLM assessment call produced, and the client's counters since start."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sepsis_genai.schemas import LLMAnswer, LLMStatus

ResponseFormat = Literal["json_schema", "json_object"]


@dataclass(frozen=True, slots=True)
class LLMOutcome:
    """The result of one (possibly shared) LLM assessment call."""

    status: LLMStatus
    answer: LLMAnswer | None
    attempts: int
    latency_ms: float
    error_kind: str | None = None
    response_format: ResponseFormat | None = None
    coalesced: bool = False

    @property
    def ok(self) -> bool:
        return self.answer is not None and self.status is LLMStatus.OK


@dataclass
class LLMStats:
    """Counters for `/performance` and `/genai-health` (per instance, since start)."""

    assessments: int = 0
    http_calls: int = 0
    coalesced: int = 0
    retries: int = 0
    repairs: int = 0
    json_schema_fallbacks: int = 0
    in_flight: int = 0
    shed: int = 0
    """New calls refused because every call slot was taken."""
    by_status: Counter[str] = field(default_factory=Counter)
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_failure_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "assessments": self.assessments,
            "http_calls": self.http_calls,
            "coalesced": self.coalesced,
            "retries": self.retries,
            "repairs": self.repairs,
            "json_schema_fallbacks": self.json_schema_fallbacks,
            "in_flight": self.in_flight,
            "shed": self.shed,
            "by_status": dict(self.by_status),
            "last_success": _iso(self.last_success),
            "last_failure": _iso(self.last_failure),
            "last_failure_kind": self.last_failure_kind,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
