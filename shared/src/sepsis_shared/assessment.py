"""The assessment both pathways return: risk, priority, alert, scores, drivers (DESIGN §4).

Each pathway subclasses `AssessmentCore` with what only it knows (the ML pathway: which rule
set the priority; the GenAI pathway: rationale, guardrail, LLM details).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from sepsis_shared.confidence import Confidence
from sepsis_shared.patient import BedsideFinding, DataQualityIssue, NormalizedPatient
from sepsis_shared.scores import ClinicalScores

__all__ = [
    "KEY_INPUTS",
    "Alert",
    "AlertColour",
    "AssessmentCore",
    "ModelInfo",
    "Priority",
    "alert_for",
    "max_priority",
    "missing_inputs",
]


class Priority(StrEnum):
    """How soon a clinician must act: Critical > Urgent > Elevated > Standard."""

    CRITICAL = "Critical"
    URGENT = "Urgent"
    ELEVATED = "Elevated"
    STANDARD = "Standard"

    @property
    def rank(self) -> int:
        """3 for Critical down to 0 for Standard; compare priorities by rank, not by text."""
        return _RANK[self]

    @property
    def is_alert(self) -> bool:
        """Critical and Urgent call for a clinician's review now."""
        return self.rank >= _RANK[Priority.URGENT]


_RANK: Final[Mapping[Priority, int]] = MappingProxyType(
    {Priority.STANDARD: 0, Priority.ELEVATED: 1, Priority.URGENT: 2, Priority.CRITICAL: 3}
)


def max_priority(*priorities: Priority | Iterable[Priority]) -> Priority:
    """The highest of the given priorities (single values or iterables); Standard if none."""
    best = Priority.STANDARD
    for item in priorities:
        for p in (item,) if isinstance(item, Priority) else item:
            if _RANK[p] > _RANK[best]:
                best = p
    return best


AlertColour = Literal["red", "orange", "yellow", "green"]


class Alert(BaseModel):
    """What the priority means at the bedside."""

    model_config = ConfigDict(frozen=True)

    level: Priority = Field(description="The priority this alert stands for.")
    colour: AlertColour = Field(description="red, orange, yellow or green.")
    action: str = Field(description="The recommended action, in words.")


# Response levels follow the NEWS2 clinical response (RCP 2017) and the Surviving Sepsis
# Campaign hour-1 bundle (Levy MM et al., Crit Care Med 2018;46(6):997-1000).
_ALERTS: Final[Mapping[Priority, Alert]] = MappingProxyType(
    {
        Priority.CRITICAL: Alert(
            level=Priority.CRITICAL,
            colour="red",
            action=(
                "Immediate bedside review by the responding clinician; start the sepsis bundle "
                "(lactate, blood cultures, antibiotics within 1 hour, fluids for hypotension) "
                "and consider escalation to critical care."
            ),
        ),
        Priority.URGENT: Alert(
            level=Priority.URGENT,
            colour="orange",
            action=(
                "Urgent review by a clinician within 30 minutes; assess for infection and organ "
                "dysfunction, measure lactate, and observe at least hourly."
            ),
        ),
        Priority.ELEVATED: Alert(
            level=Priority.ELEVATED,
            colour="yellow",
            action=(
                "Watch closely: nurse review now, observations at least every 4 hours, and "
                "escalate if any vital sign worsens or new confusion appears."
            ),
        ),
        Priority.STANDARD: Alert(
            level=Priority.STANDARD,
            colour="green",
            action="Routine care: continue observations at the usual frequency.",
        ),
    }
)


def alert_for(priority: Priority) -> Alert:
    """The alert (colour and recommended action) of a priority."""
    return _ALERTS[priority]


class ModelInfo(BaseModel):
    """Which model produced the assessment."""

    name: str = Field(description="Model name, e.g. `sepsis-lgbm`.")
    version: str = Field(description="Model version.")


KEY_INPUTS: Final[tuple[str, ...]] = (
    "HR",
    "Resp",
    "Temp",
    "SBP",
    "MAP",
    "O2Sat",
    "GCS",
    "Lactate",
    "WBC",
    "Creatinine",
    "Platelets",
    "Bilirubin_total",
)
"""The inputs that matter most to the scores and the model; `missing_inputs` reports these."""


def missing_inputs(p: NormalizedPatient) -> list[str]:
    """The key inputs that were not sent, in `KEY_INPUTS` order.

    MAP counts as sent when SBP and DBP were (it is derived from them).
    """
    series = p.series
    out: list[str] = []
    for name in KEY_INPUTS:
        if name in series:
            continue
        if name == "MAP" and "SBP" in series and "DBP" in series:
            continue
        out.append(name)
    return out


class AssessmentCore(BaseModel):
    """The sepsis risk assessment common to both pathways."""

    patient_id: str | None = Field(
        default=None, description="The request's `patient_id`, echoed when it was sent."
    )
    risk_score: float = Field(ge=0, le=100, description="Sepsis risk, 0 (lowest) to 100.")
    sepsis_probability_6h: float = Field(
        ge=0, le=1, description="Calibrated probability of sepsis within the next 6 hours."
    )
    priority: Priority = Field(
        description="Critical > Urgent > Elevated > Standard. Critical and Urgent call for a "
        "clinician's review now; Elevated means watch closely; Standard, routine care."
    )
    alert: Alert = Field(description="Alert level, colour and recommended action.")
    clinical_scores: ClinicalScores = Field(
        description="qSOFA, SIRS, NEWS2 and SOFA with their components and missing inputs."
    )
    drivers: list[str] = Field(
        description="The few findings that moved the assessment most, in words."
    )
    model: ModelInfo = Field(description="Model name and version.")
    missing_inputs: list[str] = Field(
        description="Key inputs that were not sent; sending them would sharpen the assessment."
    )
    confidence: Confidence = Field(
        description="How much of the picture the assessment rests on (families of inputs "
        "present, age of the labs, inputs outside what the model was trained on)."
    )
    data_quality: list[DataQualityIssue] = Field(
        description="Every input left out or read another way (a monitor artefact, a value "
        "too old to count, a percentage sent for a fraction), with the reason."
    )
    findings: list[BedsideFinding] = Field(
        description="The bedside findings the scores used (GCS, ACVPU, oxygen, vasopressors, "
        "infection, urine output) and where each came from: a field or the notes."
    )
    request_id: str | None = Field(default=None, description="The request's X-Request-ID.")
    processing_time_ms: float = Field(ge=0, description="Time spent in the service, in ms.")
