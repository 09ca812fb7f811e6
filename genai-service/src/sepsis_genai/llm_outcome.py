"""What one LLM assessment call produced, and the client's counters since start."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sepsis_genai.llm_probe import ProbeResult
from sepsis_genai.schemas import LLMAnswer, LLMStatus
from sepsis_genai.tokens import NO_TOKENS, TokenUsage

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
    tokens: TokenUsage = NO_TOKENS
    """What this call's completions cost, as the server reported (repair turns included)."""

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
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_failure_kind: str | None = None
    probes: int = 0
    last_probe: ProbeResult | None = None

    def latest(self) -> tuple[datetime, bool, str | None, str] | None:
        """The newest evidence of the LLM's state: (when, ok, error kind, "call" or "probe")."""
        seen: list[tuple[datetime, bool, str | None, str]] = []
        if self.last_success is not None:
            seen.append((self.last_success, True, None, "call"))
        if self.last_failure is not None:
            seen.append((self.last_failure, False, self.last_failure_kind, "call"))
        if self.last_probe is not None:
            probe = self.last_probe
            seen.append((probe.at, probe.ok, probe.error_kind, "probe"))
        return max(seen, key=lambda item: item[0]) if seen else None

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
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "prompt_tokens_per_assessment": _per(self.prompt_tokens, self.assessments),
            "completion_tokens_per_assessment": _per(self.completion_tokens, self.assessments),
            "by_status": dict(self.by_status),
            "last_success": _iso(self.last_success),
            "last_failure": _iso(self.last_failure),
            "last_failure_kind": self.last_failure_kind,
            "probes": self.probes,
        }


def _per(total: int, count: int) -> float | None:
    return round(total / count, 1) if count else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
