"""How much of the picture an assessment rests on, in words a clinician reads.

Both pathways say, with every answer, which families of inputs it had (vital signs, blood
pressure, laboratory results, oxygen, mentation), how old the labs were and how much history
the vital signs carried, and grade the answer `high`, `medium` or `low` from that. The grade
never changes the priority: the rule-based floors apply in full whatever it says; it tells the
reader how far to lean on the risk score. The ML pathway may lower it further when the inputs
lie outside what its model was trained on (`sepsis_ml.reliability`).

The rule (each step lowers the grade by the reasons it gives):

- **low**: fewer than 3 of the 5 core vital signs (heart rate, respiratory rate, blood
  pressure, SpO2, temperature), or neither blood pressure nor any key laboratory result;
- **medium**: blood pressure missing, no key laboratory result (lactate, WBC, creatinine,
  platelets, bilirubin), every key lab older than `RECENT_LAB_HOURS`, or vital signs of a
  single hour only;
- **high**: otherwise.

`picture` takes the age of the newest value of each variable, so that the same rule grades a
request (`picture_of_patient`) and every hour of a validation set (which is how the grades were
checked: hours graded lower are the ones the model ranks less well; see the model card).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from sepsis_shared.patient_types import NormalizedPatient

__all__ = [
    "CORE_VITALS",
    "KEY_LABS",
    "RECENT_LAB_HOURS",
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
RECENT_LAB_HOURS: Final = 8.0
"""Key labs all older than this: the answer rests on this morning's blood, not this hour's."""
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
        "oxygen), mentation (GCS or ACVPU), history (vital signs over 2 or more hours)."
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


def _hours(x: float) -> str:
    return f"{x:.0f} h" if x >= 1 else "under 1 h"


def picture(newest_age: Mapping[str, float], *, vital_hours: int) -> Confidence:
    """The grade of an assessment whose inputs had these ages (hours from each variable's
    newest value to the scored hour; only variables used), with vital signs over
    `vital_hours` distinct hours."""
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
    if lab_ages and min(lab_ages.values()) > RECENT_LAB_HOURS:
        medium.append(
            f"the newest key lab result is {_hours(min(lab_ages.values()))} old "
            f"(none within {RECENT_LAB_HOURS:g} h)"
        )
    if core and vital_hours < 2:
        medium.append("vital signs of a single hour only: no trend could be seen")
    level: ConfidenceLevel = "low" if low else "medium" if medium else "high"
    reasons = low + medium
    return Confidence.model_construct(
        level=level,
        summary=_summary(level, reasons),
        reasons=reasons,
        families={
            "vital_signs": core >= MIN_CORE_VITALS,
            "blood_pressure": bp,
            "labs": bool(lab_ages),
            "oxygen": any(name in newest_age for name in _OXYGEN),
            "mentation": any(name in newest_age for name in _MENTATION),
            "history": vital_hours >= 2,
        },
        missing_vitals=missing_vitals,
        lab_age_hours={name: round(age, 1) for name, age in lab_ages.items()},
        outside_training=[],
    )


_VITAL_NAMES: Final = frozenset(name for names in CORE_VITALS.values() for name in names) | {"DBP"}


def picture_of_patient(p: NormalizedPatient) -> Confidence:
    """`picture` of a taken-in patient (`sepsis_shared.intake.take_in`)."""
    hours: set[int] = set()
    for name in _VITAL_NAMES:
        for observation in p.series.get(name, ()):
            hours.add(int(observation.hours_ago))
    return picture(
        {name: observations[-1].hours_ago for name, observations in p.series.items()},
        vital_hours=len(hours),
    )
