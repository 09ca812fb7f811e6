"""How much of the picture an assessment rests on, in words a clinician reads.

Both pathways say, with every answer, which families of inputs it had (vital signs, blood
pressure, laboratory results, oxygen, mentation), how old the labs were and whether the vital
signs showed a trend, and grade the answer `high`, `medium` or `low` from that. The grade never
changes the priority: the rule-based floors apply in full whatever it says; it tells the reader
how far to lean on the risk score. The ML pathway may lower it further when the inputs
lie outside what its model was trained on (`sepsis_ml.reliability`).

The rule (each step lowers the grade by the reasons it gives):

- **low**: fewer than 3 of the 5 core vital signs (heart rate, respiratory rate, blood
  pressure, SpO2, temperature), or neither blood pressure nor any key laboratory result;
- **medium**: blood pressure missing, no key laboratory result (lactate, WBC, creatinine,
  platelets, bilirubin), or no vital sign measured in two different hours of the last
  `TREND_HOURS` (no trend to see);
- **high**: otherwise.

The age of the labs is reported (`lab_age_hours`) but does not lower the grade: on the
validation hours, those whose newest key lab was more than 8 hours old were ranked better by
the model, not worse (hourly AUROC 0.833 against 0.763 for the others), so calling them less
certain would mislead.

`picture` takes the age of the newest value of each variable and whether a trend could be seen,
so that the same rule grades a request (`picture_of_patient`) and every hour of a validation
set (`sepsis_ml.training.confidence_check`, which is how the grades were checked; see the
model card).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from sepsis_shared.patient_types import NormalizedPatient, Observation

__all__ = [
    "CORE_VITALS",
    "KEY_LABS",
    "TREND_HOURS",
    "Confidence",
    "ConfidenceLevel",
    "lower_to",
    "picture",
    "picture_of_patient",
]

ConfidenceLevel = Literal["high", "medium", "low"]
_ORDER: Final[Mapping[str, int]] = {"high": 2, "medium": 1, "low": 0}

CORE_VITALS: Final[Mapping[str, tuple[str, ...]]] = {
    "heart rate": ("HR",),
    "respiratory rate": ("Resp",),
    "blood pressure": ("SBP", "MAP"),
    "SpO2": ("O2Sat",),
    "temperature": ("Temp",),
}
"""The five core vital signs, each met by any of its variables."""
KEY_LABS: Final[Mapping[str, str]] = {
    "Lactate": "lactate",
    "WBC": "WBC",
    "Creatinine": "creatinine",
    "Platelets": "platelets",
    "Bilirubin_total": "bilirubin",
}
"""The laboratory results the sepsis scores and criteria lean on."""
MIN_CORE_VITALS: Final = 3
TREND_HOURS: Final = 8
"""A trend is a vital sign measured in two different hours of this many (the ML window)."""
_OXYGEN: Final = ("FiO2", "SupplementalO2")
_MENTATION: Final = ("GCS", "Consciousness")


class Confidence(BaseModel):
    """How much of the picture the assessment rests on."""

    model_config = ConfigDict(frozen=True)

    level: ConfidenceLevel = Field(
        description="`high`, `medium` or `low`: how far to lean on the risk score. It never "
        "lowers the priority; the rule-based floors apply in full."
    )
    summary: str = Field(description="The grade and its main reason, in one sentence.")
    reasons: list[str] = Field(description="Every reason the grade is below high.")
    families: dict[str, bool] = Field(
        description="Which families of inputs were present: vital_signs (3 or more of the 5 "
        "core ones), blood_pressure, labs (any key lab), oxygen (FiO2 or supplemental "
        "oxygen), mentation (GCS or ACVPU), trend (a vital sign measured in two different "
        "hours of the last 8)."
    )
    missing_vitals: list[str] = Field(description="Core vital signs that were not sent.")
    lab_age_hours: dict[str, float] = Field(
        description="Age of the newest result of each key lab used, in hours."
    )
    outside_training: list[str] = Field(
        default_factory=list,
        description="Inputs outside the range the model was trained on (ML pathway).",
    )


def lower_to(confidence: Confidence, level: ConfidenceLevel, reasons: Iterable[str]) -> Confidence:
    """`confidence` graded at most `level`, with more reasons (the ML pathway's check)."""
    extra = list(reasons)
    if not extra:
        return confidence
    new_level = level if _ORDER[level] < _ORDER[confidence.level] else confidence.level
    all_reasons = [*confidence.reasons, *extra]
    return confidence.model_copy(
        update={
            "level": new_level,
            "reasons": all_reasons,
            "summary": _summary(new_level, all_reasons),
        }
    )


def _summary(level: ConfidenceLevel, reasons: list[str]) -> str:
    if not reasons:
        return "High confidence: vital signs, blood pressure and recent labs were all sent."
    more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
    return f"{level.capitalize()} confidence: {reasons[0]}{more}."


def picture(newest_age: Mapping[str, float], *, trend: bool) -> Confidence:
    """The grade of an assessment whose inputs had these ages (hours from each variable's
    newest value to the scored hour; only variables used); `trend`: some vital sign was
    measured in two different hours of the last TREND_HOURS."""
    missing_vitals = [
        family
        for family, names in CORE_VITALS.items()
        if not any(name in newest_age for name in names)
    ]
    core = len(CORE_VITALS) - len(missing_vitals)
    bp = "blood pressure" not in missing_vitals
    lab_ages = {name: newest_age[name] for name in KEY_LABS if name in newest_age}
    low: list[str] = []
    medium: list[str] = []
    if core < MIN_CORE_VITALS:
        low.append(f"only {core} of the 5 core vital signs were sent")
    if not bp and not lab_ages:
        low.append("neither blood pressure nor a key lab result was sent")
    elif not bp:
        medium.append("no blood pressure was sent")
    elif not lab_ages:
        medium.append("no key lab result (lactate, WBC, creatinine, platelets, bilirubin) was sent")
    if core and not trend:
        medium.append(
            f"no vital sign was measured twice in the last {TREND_HOURS} h: no trend could be seen"
        )
    level: ConfidenceLevel = "low" if low else "medium" if medium else "high"
    reasons = low + medium
    return Confidence(
        level=level,
        summary=_summary(level, reasons),
        reasons=reasons,
        families={
            "vital_signs": core >= MIN_CORE_VITALS,
            "blood_pressure": bp,
            "labs": bool(lab_ages),
            "oxygen": any(name in newest_age for name in _OXYGEN),
            "mentation": any(name in newest_age for name in _MENTATION),
            "trend": trend,
        },
        missing_vitals=missing_vitals,
        lab_age_hours={name: round(age, 1) for name, age in lab_ages.items()},
        outside_training=[],
    )


_VITAL_NAMES: Final = ("HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp")


def picture_of_patient(p: NormalizedPatient) -> Confidence:
    """`picture` of a taken-in patient (`sepsis_shared.intake.take_in`)."""
    return picture(
        {name: observations[-1].hours_ago for name, observations in p.series.items()},
        trend=any(_has_trend(p.series.get(name, ())) for name in _VITAL_NAMES),
    )


def _has_trend(observations: Sequence[Observation]) -> bool:
    """Measured in two different hours of the last TREND_HOURS (newest first: most lists
    show it at their second value)."""
    if len(observations) < 2:
        return False
    newest = int(observations[-1].hours_ago)
    for o in reversed(observations):
        if o.hours_ago >= TREND_HOURS:
            return False
        if int(o.hours_ago) != newest:
            return True
    return False
