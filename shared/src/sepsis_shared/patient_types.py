"""The patient record the parser produces, and the limits and request keys it works by.

`NormalizedPatient` is what every consumer reads: canonical names and units, every series
oldest first, what was done with inputs that could not be taken as sent (`DataQualityIssue`)
and where each bedside finding came from (`BedsideFinding`). `sepsis_shared.patient`
re-exports all of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "GENDER_WORDS",
    "MAX_HISTORY_ITEMS",
    "MAX_HISTORY_ITEM_CHARS",
    "MAX_INT_PATIENT_ID",
    "MAX_NOTES_CHARS",
    "MAX_PATIENT_ID_CHARS",
    "MAX_POINTS_PER_VARIABLE",
    "META_KEYS",
    "BedsideFinding",
    "DataQualityIssue",
    "NormalizedPatient",
    "Observation",
    "PatientHistory",
]

MAX_POINTS_PER_VARIABLE: Final = 2000
MAX_NOTES_CHARS: Final = 20_000
MAX_HISTORY_ITEMS: Final = 200
MAX_HISTORY_ITEM_CHARS: Final = 500
MAX_PATIENT_ID_CHARS: Final = 128
MAX_INT_PATIENT_ID: Final = 10**MAX_PATIENT_ID_CHARS
"""A numeric patient_id must have at most MAX_PATIENT_ID_CHARS digits, like a string one."""

META_KEYS: Final[Mapping[str, str]] = {
    "patient_id": "patient_id",
    "patientid": "patient_id",
    "notes": "notes",
    "patient_history": "patient_history",
    "history": "patient_history",
    "units": "units",
    "vitals": "vitals",
    "labs": "labs",
}
"""Request keys other than variables (matched in lower case) -> what they hold."""
GENDER_WORDS: Final[Mapping[str, int]] = {"female": 0, "f": 0, "male": 1, "m": 1}


class Observation(NamedTuple):
    """One measurement: its value (canonical unit) and how many hours before the scored hour."""

    value: float
    hours_ago: float


class PatientHistory(BaseModel):
    """Known conditions and current medications, as free text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conditions: list[str] = Field(
        default_factory=list, description="Known conditions, e.g. `diabetes`, `COPD`."
    )
    medications: list[str] = Field(
        default_factory=list, description="Current medications, e.g. `metformin`."
    )


QualityAction = Literal["left_out", "read_as"]


class DataQualityIssue(BaseModel):
    """An input the assessment did not take as sent, and why."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(description="Where it was sent, as a dotted path (`vitals.SBP[3]`).")
    variable: str = Field(description="The canonical variable name.")
    time: str | None = Field(
        default=None, description="The point's timestamp as sent, for a time-series point."
    )
    hours_ago: float | None = Field(
        default=None, description="How long before the scored hour it was measured."
    )
    value: float | None = Field(
        default=None, description="The value as sent (before any unit conversion)."
    )
    action: QualityAction = Field(
        description="`left_out`: not used; `read_as`: used as `used_value`."
    )
    used_value: float | None = Field(
        default=None, description="The value used instead (canonical unit), for `read_as`."
    )
    reason: str = Field(description="Why, in words a clinician reads.")


class BedsideFinding(BaseModel):
    """A bedside finding the scores used, and where it came from."""

    model_config = ConfigDict(frozen=True)

    variable: str = Field(
        description="`GCS`, `Consciousness`, `SupplementalO2`, `Vasopressors`, `Infection` "
        "or `UrineOutput`."
    )
    value: float = Field(description="The value used (canonical code or unit).")
    text: str = Field(description="The finding in words, e.g. `GCS 11`, `on vasopressors`.")
    source: Literal["field", "note"] = Field(
        description="`field`: sent as a variable; `note`: read from the notes (taken as "
        "current, since a note carries no time per statement)."
    )
    evidence: str | None = Field(
        default=None, description="For a note finding, the phrase it was read from."
    )


@dataclass(frozen=True, slots=True)
class NormalizedPatient:
    """A validated patient: canonical names, canonical units, every series oldest first."""

    patient_id: str | None = None
    series: Mapping[str, tuple[Observation, ...]] = field(default_factory=dict)
    """Canonical name -> observations, oldest first; only variables that were sent."""
    age: float | None = None
    gender: int | None = None
    """0 female, 1 male."""
    iculos: float | None = None
    """Hours since ICU admission at the scored hour, when known."""
    hosp_adm_time: float | None = None
    """Hours between hospital and ICU admission, when known (usually negative)."""
    notes: str | None = None
    history: PatientHistory = field(default_factory=PatientHistory)
    reference_time: datetime | None = None
    """The newest timestamp of any time series sent (the scored hour), None without series."""
    data_quality: tuple[DataQualityIssue, ...] = ()
    """Inputs left out or read another way, in the order they were met."""
    findings: tuple[BedsideFinding, ...] = ()
    """The bedside findings in `series` (fields and what the notes said), once each."""
    sent_as: Mapping[str, str] = field(default_factory=dict)
    """Canonical name -> the field path it was sent under (without a batch's prefix)."""

    def observations(self, name: str) -> tuple[Observation, ...]:
        """The observations of a canonical variable, oldest first (empty when not sent)."""
        return self.series.get(name, ())

    def latest(self, name: str) -> float | None:
        """The newest value of a canonical variable, None when it was not sent."""
        obs = self.series.get(name)
        return obs[-1].value if obs else None

    def values(self, name: str) -> tuple[float, ...]:
        """The values of a canonical variable, oldest first (empty when not sent)."""
        return tuple(o.value for o in self.series.get(name, ()))

    def has(self, name: str) -> bool:
        """Whether the variable was sent."""
        return name in self.series
