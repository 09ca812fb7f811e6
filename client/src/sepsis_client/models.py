"""The answers of the API as typed models.

They mirror the response schemas of the gateway's merged OpenAPI document (the client's tests
fail when a field here is not in the document, or a required one there is missing here). Every
model keeps the members it does not declare (`extra="allow"`): a newer server adding a field
does not break an older client, and `model_extra` shows it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["Critical", "Urgent", "Elevated", "Standard"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Alert(_Model):
    level: Priority
    colour: Literal["red", "orange", "yellow", "green"]
    action: str


class ScoreResult(_Model):
    name: str
    score: int
    max_score: int
    components: dict[str, int | None]
    missing: list[str]
    complete: bool


class ClinicalScores(_Model):
    qsofa: ScoreResult
    sirs: ScoreResult
    news2: ScoreResult
    sofa: ScoreResult


class Confidence(_Model):
    level: Literal["high", "medium", "low"]
    summary: str
    reasons: list[str]
    families: dict[str, bool]
    missing_vitals: list[str]
    lab_age_hours: dict[str, float]
    outside_training: list[str] = Field(default_factory=list)


class DataQualityIssue(_Model):
    field: str
    variable: str
    action: str
    reason: str
    time: str | None = None
    hours_ago: float | None = None
    value: float | None = None
    used_value: float | None = None
    source: str | None = Field(
        default=None, description="FHIR routes: the Bundle element the value came from."
    )


class BedsideFinding(_Model):
    variable: str
    value: float
    text: str
    source: str
    evidence: str | None = None


class ModelInfo(_Model):
    name: str
    version: str


class Assessment(_Model):
    """What both pathways answer (DESIGN §4, the assessment core)."""

    risk_score: float
    sepsis_probability_6h: float | None
    priority: Priority
    alert: Alert
    clinical_scores: ClinicalScores
    drivers: list[str]
    model: ModelInfo
    missing_inputs: list[str]
    confidence: Confidence
    data_quality: list[DataQualityIssue]
    findings: list[BedsideFinding]
    processing_time_ms: float
    patient_id: str | None = None
    request_id: str | None = None


class MLAssessment(Assessment):
    """The hybrid ML pathway's answer (`/classify`)."""

    priority_rule: str
    rules_fired: list[Any]
    model_probability: float
    alert_threshold: float
    config_version: str
    icu_los_known: bool


class GenAIAssessment(Assessment):
    """The GenAI pathway's answer (`/genai-classify`)."""

    probability_source: str
    rationale: str
    key_findings: list[str]
    recommended_actions: list[str]
    guardrail: dict[str, Any]
    llm: dict[str, Any]
    degraded: bool
    note_findings: list[Any]
    trends: dict[str, Any]
    pipeline_version: str


class FhirReport(_Model):
    """What the gateway did with each entry of a FHIR Bundle."""

    bundle_type: str
    entries: int
    patient: str | None
    used: list[dict[str, Any]]
    not_used: list[dict[str, Any]]
    notes: list[str]


class FhirMLAssessment(MLAssessment):
    fhir: FhirReport


class FhirGenAIAssessment(GenAIAssessment):
    fhir: FhirReport


class BatchItemError(_Model):
    error: dict[str, Any]


class BatchResponse(_Model):
    """A batch answer: `results` in the order sent, an assessment or an error entry each."""

    results: list[dict[str, Any]]
    count: int
    errors: int
    processing_time_ms: float
    request_id: str | None = None

    def assessments(self) -> list[dict[str, Any] | None]:
        """Each patient's assessment in order, None where that patient had an error."""
        return [None if "error" in r else r for r in self.results]


class MLBatchResponse(BatchResponse):
    """`/classify-batch`: one model call for all patients, so one model and config."""

    model: ModelInfo
    config_version: str


class Health(_Model):
    status: Literal["healthy"]
    timestamp: str
    service: str
    version: str
    upstreams: dict[str, dict[str, Any]]
    unavailable: list[str]


class Performance(_Model):
    service: str
    since: str
    uptime_s: float
    totals: dict[str, Any]
    routes: dict[str, Any]
    upstream_calls: dict[str, Any]
    upstreams: dict[str, Any]
    cds_feedback: dict[str, Any]
