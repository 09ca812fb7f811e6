"""The patient records the parser produces, and the limits and request keys it works by.

`NormalizedPatient` is what every consumer reads; `HourlyPatient` is the lighter record of a
request of numbers and lists of numbers only (see `sepsis_shared.patient`, which re-exports all
of this).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Final, NamedTuple

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
    "HourlyPatient",
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


_HOURS: Final = tuple(float(h) for h in range(MAX_POINTS_PER_VARIABLE))
# Observation(value, hours_ago) made by tuple.__new__ directly, as its generated __new__ does.
_observation: Final[Callable[[tuple[float, float]], Observation]] = partial(
    tuple.__new__, Observation
)


class HourlyPatient(NamedTuple):
    """A validated patient whose every variable came as a number or a list of numbers.

    `hourly` holds each variable sent, newest first: its value i is from i hours before the
    scored hour (a single number is the scored hour). This is how most requests arrive; kept
    in this form, a batch can be laid out in arrays without building an `Observation` per
    value. `normalized()` is exactly what `parse_patient` returns for the same request.

    A named tuple rather than a frozen dataclass: a batch makes one per patient, and a tuple
    is built in half the time (a frozen dataclass sets each field through `object.__setattr__`).
    """

    patient_id: str | None
    hourly: Mapping[str, tuple[float, ...]]
    """Canonical name -> values, newest first (index = hours before the scored hour)."""
    age: float | None
    gender: int | None
    iculos: float | None
    hosp_adm_time: float | None
    notes: str | None
    history: PatientHistory | None
    """None when none was sent (`normalized()` then gives an empty one)."""

    def normalized(self) -> NormalizedPatient:
        """The same patient as a NormalizedPatient (series oldest first)."""
        series = {
            # hours before the scored hour: len-1 for the oldest value down to 0
            name: tuple(
                map(_observation, zip(reversed(xs), _HOURS[len(xs) - 1 :: -1], strict=True))
            )
            for name, xs in self.hourly.items()
        }
        return NormalizedPatient(
            patient_id=self.patient_id,
            series=series,
            age=self.age,
            gender=self.gender,
            iculos=self.iculos,
            hosp_adm_time=self.hosp_adm_time,
            notes=self.notes,
            history=self.history
            if self.history is not None
            else PatientHistory.model_construct(conditions=[], medications=[]),
        )
