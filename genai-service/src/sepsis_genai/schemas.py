"""The LLM's answer schema and the GenAI service's response models."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from sepsis_shared.assessment import AssessmentCore, Priority

Provider = Literal["azure", "openai", "offline"]

ANSWER_SCHEMA_VERSION: Final = "1"
"""Version of `LLMAnswer`; part of every cache key, so a change invalidates cached answers."""

MAX_RATIONALE_CHARS: Final = 1500
MAX_LIST_ITEMS: Final = 8
MAX_ITEM_CHARS: Final = 240

_Item = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ITEM_CHARS)
]


class LLMAnswer(BaseModel):
    """What the LLM must answer: validated strictly (ranges, enums) before anything uses it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    risk_score: int = Field(ge=0, le=100)
    priority: Priority
    sepsis_probability_6h: float = Field(ge=0.0, le=1.0)
    rationale: str = Field(min_length=1, max_length=MAX_RATIONALE_CHARS)
    key_findings: list[_Item] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    recommended_actions: list[_Item] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)


def answer_json_schema() -> dict[str, Any]:
    """The JSON schema sent as `response_format` (strict structured output).

    Written by hand to stay inside the subset that strict structured output accepts (every
    property required, no additional properties); string lengths are enforced by `LLMAnswer`
    and stated in the prompt.
    """
    text_list = {"type": "array", "items": {"type": "string"}, "maxItems": MAX_LIST_ITEMS}
    return {
        "type": "object",
        "properties": {
            "risk_score": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "description": "Sepsis risk now, 0 (none) to 100 (certain, life-threatening).",
            },
            "priority": {
                "type": "string",
                "enum": [p.value for p in Priority],
                "description": "Critical > Urgent > Elevated > Standard.",
            },
            "sepsis_probability_6h": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Your estimate that sepsis is present or develops within 6 hours.",
            },
            "rationale": {
                "type": "string",
                "description": f"Clinical reasoning, at most {MAX_RATIONALE_CHARS} characters.",
            },
            "key_findings": {**text_list, "description": "Findings that drove the assessment."},
            "recommended_actions": {**text_list, "description": "Next steps for the team."},
        },
        "required": [
            "risk_score",
            "priority",
            "sepsis_probability_6h",
            "rationale",
            "key_findings",
            "recommended_actions",
        ],
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------------------------
# Response


class LLMStatus(StrEnum):
    """How the assessment was obtained (or why the LLM's answer is missing)."""

    OK = "ok"
    CACHED = "cached"
    OFFLINE = "offline"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INVALID_OUTPUT = "invalid_output"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXHAUSTED = "budget_exhausted"


class LLMInfo(BaseModel):
    """Where the assessment's narrative part came from."""

    provider: Provider
    model: str | None = Field(description="Model or deployment; None for the offline provider.")
    status: LLMStatus = Field(
        description=(
            "`ok` fresh LLM answer, `cached` LLM answer from the cache, `offline` no LLM "
            "configured (deterministic rules), else why the LLM answer is missing: `failed`, "
            "`timeout`, `invalid_output`, `rate_limited`, `budget_exhausted` (the day's token "
            "budget is used up: the offline rules answer until the next UTC day)."
        )
    )
    cached: bool
    latency_ms: float = Field(description="Time spent obtaining the answer (LLM call or cache).")
    attempts: int = Field(description="HTTP calls made to the LLM for this answer (0: none).")
    error_kind: str | None = Field(
        default=None, description="Short code of what failed (never exception text)."
    )
    response_format: Literal["json_schema", "json_object"] | None = None
    coalesced: bool = Field(
        default=False, description="The answer was shared with an identical in-flight request."
    )
    prompt_tokens: int = Field(
        default=0,
        description="Prompt tokens the LLM server reported for this answer's calls, repair turn "
        "included (0 when no call was made: cached, offline, shared or over budget).",
    )
    completion_tokens: int = Field(
        default=0, description="Completion tokens the LLM server reported for those calls."
    )


class FiredRuleView(BaseModel):
    """One guardrail rule that fired, with the value that fired it and its threshold."""

    rule_id: str
    description: str
    kind: str | None = Field(default=None, description="single, combined, note or trend.")
    priority_floor: Priority = Field(description="The priority this rule guarantees at least.")
    risk_floor: int = Field(description="The risk score this rule guarantees at least.")
    value: float | str | None = Field(description="What was observed.")
    threshold: float | str | None = Field(description="The configured threshold it crossed.")
    wording: str = Field(description="The rule's finding in words, from the config file.")
    adjusted_by: str | None = Field(
        default=None, description="The history adjustment that changed this rule's threshold."
    )


class GuardrailView(BaseModel):
    """The deterministic clinical floor and whether it raised the assessment."""

    override: bool = Field(
        description="True when a floor raised the priority or the risk of the LLM (or offline) "
        "assessment."
    )
    priority_floor: Priority | None = Field(description="Highest floor set (None: no rule fired).")
    risk_floor: int | None
    fired: list[FiredRuleView] = Field(description="Every rule that fired, highest floor first.")
    config_version: str
    adjustments: list[str] = Field(
        default_factory=list,
        description="History-aware adjustments that applied to this patient (e.g. a beta-blocker "
        "masking tachycardia).",
    )


class NoteFindingView(BaseModel):
    """A red flag read from the nursing notes by the deterministic extractor."""

    flag: str
    label: str
    evidence: str


class TrendView(BaseModel):
    """One variable's course over the window sent."""

    variable: str
    first: float
    last: float
    min: float
    max: float
    slope_per_hour: float | None
    n: int
    hours_span: float


ProbabilitySource = Literal["llm_estimate", "not_estimated"]


class GenAIAssessment(AssessmentCore):
    """The GenAI pathway's assessment: the common core plus the LLM and guardrail detail."""

    # Wider than the core's float on purpose: this pathway says null rather than invent a figure.
    sepsis_probability_6h: float | None = Field(  # type: ignore[assignment]
        ge=0,
        le=1,
        description=(
            "Estimated probability of sepsis within 6 hours, or null when nothing estimated "
            "one. On the GenAI pathway this is NOT a calibrated model probability; "
            "`probability_source` says where it comes from. Use the ML pathway (`/classify`) "
            "for a calibrated probability."
        ),
    )
    probability_source: ProbabilitySource = Field(
        description=(
            "Where `sepsis_probability_6h` comes from: `llm_estimate` is the LLM's own "
            "estimate as it gave it (clamped to 0-1; the guardrail never changes it, it acts on "
            "priority and risk); `not_estimated` means no LLM answer was used (offline or "
            "degraded), so the probability is null: a rule-based risk score is not a probability."
        )
    )
    rationale: str
    key_findings: list[str]
    recommended_actions: list[str]
    guardrail: GuardrailView
    llm: LLMInfo
    degraded: bool = Field(
        description="True when an LLM is configured but its answer is missing (see `llm`)."
    )
    note_findings: list[NoteFindingView]
    trends: dict[str, TrendView]
    pipeline_version: str


class BatchItem(BaseModel):
    """One patient of a batch: its assessment or its error, at its input index."""

    index: int
    ok: bool
    assessment: GenAIAssessment | None = None
    error: dict[str, Any] | None = Field(
        default=None, description="The error envelope's `error` object for this patient."
    )


class BatchResponse(BaseModel):
    """Results in input order; one bad patient never fails the batch."""

    results: list[BatchItem]
    count: int
    errors: int
    processing_time_ms: float
    request_id: str | None


# --------------------------------------------------------------------------------------------
# Operations


class CacheHealth(BaseModel):
    state: Literal["up", "down", "disabled"]
    hits: int
    misses: int
    errors: int
    hit_rate: float | None
    ttl_s: int | None


class ProbeHealth(BaseModel):
    """The last active check of the LLM (a one-token completion)."""

    interval_s: float = Field(
        description="A probe runs when nothing was heard from the LLM for this long (0: never)."
    )
    at: str | None = Field(description="When the last probe ran (None: not yet).")
    ok: bool | None
    error_kind: str | None
    latency_ms: float | None


HealthStatus = Literal["available", "degraded", "unavailable"]


class GenAIHealth(BaseModel):
    """State of the GenAI pathway: LLM, cache and guardrail."""

    status: HealthStatus = Field(
        description="`available`: LLM answering; `degraded`: answers come from the offline "
        "rules (no LLM configured, the newest of the last LLM call and the last probe failed, "
        "or the day's token budget is used up) or the cache is down; "
        "`unavailable`: the LLM is failing and the service is set to answer 503."
    )
    pipeline_version: str
    provider: Provider
    model: str | None
    reason: str | None
    last_llm_success: str | None
    last_llm_failure: str | None
    last_llm_failure_kind: str | None
    llm_probe: ProbeHealth | None = Field(
        description="The last active check of the LLM; None without an LLM."
    )
    cache: CacheHealth
    guardrail_version: str
    timestamp: str


class ReloadResult(BaseModel):
    status: Literal["reloaded"]
    version: str
    previous_version: str
    rules: int | None = None
