"""Taking a parsed patient in: values too old to count, and bedside findings from the notes.

Both pathways assess what `take_in` leaves, so that a value counts, or does not, the same way
in each:

- **Age.** A value describes the patient for a while: a vital sign or a bedside observation
  (GCS, ACVPU, oxygen, vasopressors) for `InputLimits.vital_max_age_hours` (default 8, the ML
  model's window), a laboratory result (and PaO2, urine output, infection status) for
  `lab_max_age_hours` (default 24: wards and ICUs draw labs every 12-24 hours). A variable
  whose newest value is older than its limit is left out and listed in `data_quality`; older
  points of a variable that also has a recent one stay as its history.
- **Notes.** What a nurse wrote down counts like a field: GCS, new confusion or another ACVPU
  level, supplemental oxygen, vasopressors, suspected or confirmed infection and an hourly
  urine output are read from the notes (`sepsis_shared.notes.read_bedside_values`, negation
  aware) and used where the request did not send the variable itself; a note carries no time
  per statement, so its values are taken as current. Where a field and the notes disagree the
  field is used and the notes' value is listed in `data_quality`.
- **Findings.** Every bedside finding used is listed in `findings` with where it came from.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from sepsis_shared.notes import read_bedside_values
from sepsis_shared.patient_types import (
    BedsideFinding,
    DataQualityIssue,
    NormalizedPatient,
    Observation,
)
from sepsis_shared.variables import CONSCIOUSNESS_LETTERS, VARIABLES

__all__ = ["BEDSIDE_FINDINGS", "InputLimits", "finding_text", "take_in"]

BEDSIDE_FINDINGS: Final = (
    "GCS",
    "Consciousness",
    "SupplementalO2",
    "Vasopressors",
    "Infection",
    "UrineOutput",
)
"""The bedside variables reported in `findings`, in this order."""

_ACVPU_WORDS: Final = (
    "alert",
    "new confusion",
    "responds to voice",
    "responds to pain",
    "unresponsive",
)


class InputLimits(BaseModel):
    """How old a value may be and still count (part of each pathway's clinical config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vital_max_age_hours: float = Field(
        default=8.0,
        ge=1.0,
        le=24.0,
        description="A vital sign or bedside observation counts while at most this old.",
    )
    lab_max_age_hours: float = Field(
        default=24.0,
        ge=1.0,
        le=24.0,
        description="A laboratory result counts while at most this old (the ML model was "
        "trained on labs up to 24 hours old).",
    )

    def max_age(self, variable: str) -> float:
        """The age limit of a series variable."""
        if VARIABLES[variable].freshness == "lab":
            return self.lab_max_age_hours
        return self.vital_max_age_hours


def finding_text(variable: str, value: float) -> str:
    """A bedside finding in words."""
    if variable == "GCS":
        return f"GCS {value:g}"
    if variable == "Consciousness":
        code = int(value)
        return f"{_ACVPU_WORDS[code]} (ACVPU {CONSCIOUSNESS_LETTERS[code]})"
    if variable == "SupplementalO2":
        return "on supplemental oxygen" if value >= 1 else "on room air"
    if variable == "Vasopressors":
        return "on vasopressors or inotropes" if value >= 1 else "no vasopressors"
    if variable == "Infection":
        return ("no infection known", "suspected infection", "confirmed infection")[int(value)]
    if variable == "UrineOutput":
        return f"urine output {value:g} mL/h"
    return f"{variable} {value:g}"


def _field(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _hours(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def take_in(
    patient: NormalizedPatient, limits: InputLimits, *, field_prefix: str = ""
) -> NormalizedPatient:
    """The patient as the assessment takes it (see the module docstring)."""
    issues = list(patient.data_quality)
    series = dict(patient.series)
    # Without a time series every variable's newest value is the scored hour itself (a number,
    # or the first of a list): nothing can be too old.
    if patient.reference_time is not None:
        for name, observations in patient.series.items():
            limit = limits.max_age(name)
            newest = observations[-1].hours_ago
            if newest <= limit:
                continue
            # the newest value of all is the scored hour itself, so something always stays
            del series[name]
            issues.append(
                DataQualityIssue(
                    field=_field(field_prefix, patient.sent_as.get(name, name)),
                    variable=name,
                    time=None,
                    hours_ago=round(newest, 3),
                    value=observations[-1].value,
                    action="left_out",
                    used_value=None,
                    reason=f"the newest {name} is {_hours(newest)} h old, older than the "
                    f"{_hours(limit)} h for which a "
                    f"{'lab result' if VARIABLES[name].freshness == 'lab' else 'vital sign'} "
                    "counts: not used",
                )
            )

    from_notes: dict[str, str] = {}
    notes_field = _field(field_prefix, "notes")
    for found in read_bedside_values(patient.notes):
        sent = series.get(found.variable)
        if sent is None:
            series[found.variable] = (Observation(found.value, 0.0),)
            from_notes[found.variable] = found.evidence
        elif sent[-1].value != found.value:
            issues.append(
                DataQualityIssue(
                    field=notes_field,
                    variable=found.variable,
                    time=None,
                    hours_ago=None,
                    value=found.value,
                    action="left_out",
                    used_value=None,
                    reason=f"the notes say {finding_text(found.variable, found.value)} "
                    f"(\u201c{found.evidence}\u201d) but "
                    f"{_field(field_prefix, patient.sent_as.get(found.variable, found.variable))} "
                    "says "
                    f"{finding_text(found.variable, sent[-1].value)}: the field was used",
                )
            )

    findings = tuple(
        BedsideFinding(
            variable=name,
            value=series[name][-1].value,
            text=finding_text(name, series[name][-1].value),
            source="note" if name in from_notes else "field",
            evidence=from_notes.get(name),
        )
        for name in BEDSIDE_FINDINGS
        if name in series
    )
    if (
        len(series) == len(patient.series)
        and not from_notes
        and len(issues) == len(patient.data_quality)
        and not findings
    ):
        return patient
    return dataclasses.replace(
        patient, series=series, data_quality=tuple(issues), findings=findings
    )
