"""Response models of ml-service (requests are read raw; see `sepsis_shared.patient`).

The routes build their JSON directly for speed; these models document it in OpenAPI and are
what the tests validate responses against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from sepsis_ml.mlconfig import MLConfig
from sepsis_shared.assessment import AssessmentCore, ModelInfo
from sepsis_shared.metrics import LatencySummary


class MLAssessment(AssessmentCore):
    """The hybrid ML assessment of one patient."""

    priority_rule: str = Field(
        description="The rule that set the priority: `septic_shock_criteria`, a score floor "
        "such as `qsofa>=2` or `news2>=7`, `model_probability` (at or above the alert "
        "threshold) or `risk_score_band` (the blended risk score alone)."
    )
    rules_fired: list[str] = Field(
        description="Every floor whose criteria held, in the config's order."
    )
    model_probability: float = Field(
        ge=0.0, le=1.0, description="The model's calibrated probability, before the blend."
    )
    alert_threshold: float = Field(
        ge=0.0, le=1.0, description="The probability at which the model alone alerts."
    )
    config_version: str = Field(description="Version of the clinical config that decided.")
    icu_los_known: bool = Field(
        description="Whether the ICU length of stay (ICULOS) was sent; the model works without it."
    )


class ItemError(BaseModel):
    """Why one patient of a batch could not be assessed."""

    code: str
    message: str
    details: Any = None


class BatchErrorEntry(BaseModel):
    """A patient of a batch that could not be assessed; the others are unaffected."""

    index: int = Field(ge=0, description="Position of the patient in the request.")
    error: ItemError


class BatchAssessment(MLAssessment):
    """One assessed patient of a batch (`processing_time_ms` is the whole batch's)."""

    index: int = Field(ge=0, description="Position of the patient in the request.")


class BatchResponse(BaseModel):
    """Results in input order: an assessment or an error entry per patient."""

    results: list[BatchAssessment | BatchErrorEntry]
    count: int = Field(description="Patients in the request.")
    errors: int = Field(description="Error entries among the results.")
    processing_time_ms: float
    model: ModelInfo
    config_version: str
    request_id: str | None = None


class ModelView(BaseModel):
    """The model being served."""

    name: str
    version: str
    alert_threshold: float = Field(description="The model's own threshold (its metadata).")
    feature_count: int


class ConfigView(BaseModel):
    """The active clinical config and where it came from."""

    version: str
    description: str | None
    path: str
    sha256: str
    loaded_at: datetime
    model: ModelView
    effective_alert_threshold: float = Field(
        description="The alert threshold in force: the config's, or the model's when the "
        "config says null."
    )
    alert_threshold_source: Literal["config", "model"]
    config: MLConfig = Field(description="The whole config: blend, bands, floors.")


class ReloadResult(BaseModel):
    """Outcome of a successful reload."""

    changed: bool = Field(description="Whether the file's content differs from before.")
    previous_version: str
    previous_sha256: str
    current: ConfigView


class RouteFigures(BaseModel):
    count: int
    errors: int
    client_errors: int
    server_errors: int
    error_rate: float
    latency_ms: LatencySummary


class InferenceFigures(BaseModel):
    calls: int
    rows_scored: int
    mean_batch_size: float | None
    max_batch_size: int
    total_ms: float
    mean_ms_per_call: float | None
    mean_us_per_row: float | None


class PerformanceView(BaseModel):
    """Figures of this process since it started (latencies over every request)."""

    service: str
    uptime_s: float
    requests: int
    errors: int
    routes: dict[str, RouteFigures]
    inference: InferenceFigures
    inference_threads: int
    model: ModelInfo
