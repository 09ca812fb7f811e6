"""Patient input: parse either request form into one normalised, validated record.

Two forms are accepted (DESIGN §4):

- flat, as the original system's clients send it:
  ``{"HR": 110, "SBP": 95, "Temp": 38.5, ..., "Age": 65, "Gender": 1}``
  (it may also carry ``patient_id``, ``notes``, ``patient_history`` and ``units``);
- structured: ``{"patient_id", "vitals": {NAME: value}, "labs": {NAME: value}, "notes",
  "patient_history": {"conditions": [...], "medications": [...]}, "units": {NAME: unit}}``
  with Age/Gender/ICULOS/HospAdmTime at the top level or inside ``vitals``.

A value is a number (the current hour), a list of numbers (newest first, one per hour) or a
time series ``[{"val": 118, "ts": "2026-02-07T18:30"}, ...]`` in any order (ISO 8601; a naive
time is UTC; of two points with the same time the one given last wins). A JSON ``null`` where a
whole variable's value goes means "not measured" and is skipped; anywhere else it is an error.

Parsing walks plain dicts (no model validation on the hot path; requests are scored in a few
milliseconds end to end) and collects every field error of a patient before raising one
`InvalidInput` that names each bad field by its dotted path, as the client spelled it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from sepsis_shared.errors import FieldError, InvalidInput, PayloadTooLarge
from sepsis_shared.patient_openapi import (
    FLAT_EXAMPLE,
    SERIES_EXAMPLE,
    STRUCTURED_EXAMPLE,
    patient_batch_request_openapi,
    patient_request_openapi,
    patient_schema,
)
from sepsis_shared.variables import (
    BINARY_VARIABLES,
    CONSCIOUSNESS_CODES,
    IGNORED_NAMES,
    SERIES_VARIABLES,
    VARIABLES,
    VariableSpec,
    canonical_name,
    normalise_unit,
)

__all__ = [
    "FLAT_EXAMPLE",
    "MAX_HISTORY_ITEMS",
    "MAX_NOTES_CHARS",
    "MAX_POINTS_PER_VARIABLE",
    "SERIES_EXAMPLE",
    "STRUCTURED_EXAMPLE",
    "HourlyPatient",
    "NormalizedPatient",
    "Observation",
    "PatientHistory",
    "batch_items",
    "parse_patient",
    "parse_patient_hourly",
    "patient_batch_request_openapi",
    "patient_request_openapi",
    "patient_schema",
]

MAX_POINTS_PER_VARIABLE: Final = 2000
MAX_NOTES_CHARS: Final = 20_000
MAX_HISTORY_ITEMS: Final = 200
MAX_HISTORY_ITEM_CHARS: Final = 500
MAX_PATIENT_ID_CHARS: Final = 128


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


_EMPTY: Mapping[str, tuple[Observation, ...]] = {}


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


@dataclass(frozen=True, slots=True)
class HourlyPatient:
    """A validated patient whose every variable came as a number or a list of numbers.

    `hourly` holds each variable sent, newest first: its value i is from i hours before the
    scored hour (a single number is the scored hour). This is how most requests arrive; kept
    in this form, a batch can be laid out in arrays without building an `Observation` per
    value. `normalized()` is exactly what `parse_patient` returns for the same request.
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


# --------------------------------------------------------------------------------------------
# Parsing

_META_KEYS: Final[Mapping[str, str]] = {
    "patient_id": "patient_id",
    "patientid": "patient_id",
    "notes": "notes",
    "patient_history": "patient_history",
    "history": "patient_history",
    "units": "units",
    "vitals": "vitals",
    "labs": "labs",
}
_GENDER_WORDS: Final[Mapping[str, int]] = {"female": 0, "f": 0, "male": 1, "m": 1}
_VAL_KEYS: Final = ("val", "value")
_TS_KEYS: Final = ("ts", "timestamp", "time")

_MAX_INT_ID: Final = 10**MAX_PATIENT_ID_CHARS
"""A numeric patient_id must have at most MAX_PATIENT_ID_CHARS digits, like a string one."""

_Converter = Callable[[float], float]


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


class _Parser:
    """One patient's parse: collects errors instead of stopping at the first."""

    __slots__ = ("bad_units", "errors", "units")

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.units: dict[str, _Converter] = {}
        # variables whose unit was rejected: their values are not range-checked a second time
        self.bad_units: set[str] = set()

    def err(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    # ---- single values -------------------------------------------------------------------

    def number(self, spec: VariableSpec, value: object, path: str) -> float | None:
        """One measurement as a float in the canonical unit, or None after recording an error."""
        if isinstance(value, bool):
            if spec.name not in BINARY_VARIABLES:
                self.err(path, f"expected a number for {spec.name}, got {_describe(value)}")
                return None
            x = 1.0 if value else 0.0
        elif isinstance(value, int | float):
            try:
                x = float(value)
            except OverflowError:  # an integer beyond any float is beyond every range too
                self.err(path, f"{spec.name} is outside the accepted range {spec.range_text}")
                return None
        elif isinstance(value, str) and spec.name == "Consciousness":
            code = CONSCIOUSNESS_CODES.get(value.strip().lower())
            if code is None:
                self.err(path, "expected an ACVPU level: A, C, V, P or U (or its code 0-4)")
                return None
            return float(code)
        else:
            self.err(path, f"expected a number for {spec.name}, got {_describe(value)}")
            return None
        if not math.isfinite(x):
            self.err(path, f"expected a finite number for {spec.name}")
            return None
        conv = self.units.get(spec.name)
        if conv is not None:
            x = conv(x)
        elif spec.name in self.bad_units:
            return None
        if x < spec.low or x > spec.high:
            self.err(
                path,
                # the value itself is not echoed: error messages carry no patient data
                f"{spec.name} is outside the accepted range {spec.range_text}"
                + _unit_hint(spec, x),
            )
            return None
        if spec.integer and x != int(x):
            self.err(path, f"{spec.name} must be a whole number")
            return None
        return x

    def timestamp(self, value: object, path: str) -> datetime | None:
        if not isinstance(value, str):
            self.err(path, f"expected an ISO 8601 timestamp string, got {_describe(value)}")
            return None
        try:
            ts = datetime.fromisoformat(value.strip())
        except ValueError:
            self.err(path, "expected an ISO 8601 timestamp, e.g. 2026-02-07T18:30:00Z")
            return None
        if ts.tzinfo is None:
            return ts.replace(tzinfo=UTC)
        return ts

    # ---- one variable --------------------------------------------------------------------

    def variable(self, spec: VariableSpec, value: object, path: str) -> list[float] | None:
        """A scalar or a list of numbers as floats (newest first); None after an error."""
        if not isinstance(value, list):
            if isinstance(value, dict):
                self.err(
                    path,
                    "expected a number, a list of numbers (newest first) or a time series "
                    '[{"val": ..., "ts": ...}], got an object',
                )
                return None
            x = self.number(spec, value, path)
            return None if x is None else [x]
        if not value:
            self.err(path, f"{spec.name} is an empty list; leave the variable out instead")
            return None
        if len(value) > MAX_POINTS_PER_VARIABLE:
            self.err(path, f"at most {MAX_POINTS_PER_VARIABLE} points per variable")
            return None
        out: list[float] = []
        ok = True
        for i, item in enumerate(value):
            if isinstance(item, dict):
                self.err(f"{path}[{i}]", "mixes numbers and time-series points in one list")
                ok = False
                continue
            x = self.number(spec, item, f"{path}[{i}]")
            if x is None:
                ok = False
            else:
                out.append(x)
        return out if ok else None

    def time_series(
        self, spec: VariableSpec, items: list[Any], path: str
    ) -> list[tuple[datetime, float]] | None:
        """A time series as (ts, value) pairs in input order; None after an error."""
        if len(items) > MAX_POINTS_PER_VARIABLE:
            self.err(path, f"at most {MAX_POINTS_PER_VARIABLE} points per variable")
            return None
        out: list[tuple[datetime, float]] = []
        ok = True
        for i, item in enumerate(items):
            ipath = f"{path}[{i}]"
            if not isinstance(item, dict):
                self.err(ipath, 'expected a time-series point {"val": ..., "ts": ...}')
                ok = False
                continue
            val_key = next((k for k in _VAL_KEYS if k in item), None)
            ts_key = next((k for k in _TS_KEYS if k in item), None)
            extra = [k for k in item if k not in _VAL_KEYS and k not in _TS_KEYS]
            if extra:
                self.err(f"{ipath}.{extra[0]}", 'unknown key; a point has only "val" and "ts"')
                ok = False
            if val_key is None:
                self.err(f"{ipath}.val", "missing")
                ok = False
            if ts_key is None:
                self.err(f"{ipath}.ts", "missing")
                ok = False
            if val_key is None or ts_key is None:
                continue
            x = self.number(spec, item[val_key], f"{ipath}.{val_key}")
            ts = self.timestamp(item[ts_key], f"{ipath}.{ts_key}")
            if x is None or ts is None:
                ok = False
            else:
                out.append((ts, x))
        return out if ok else None

    def demographic(self, name: str, value: object, path: str) -> float | None:
        spec = VARIABLES[name]
        if name == "Gender":
            if isinstance(value, str):
                code = _GENDER_WORDS.get(value.strip().lower())
                if code is None:
                    self.err(path, "expected 0/1 or female/male (f/m)")
                    return None
                return float(code)
            if isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
                return float(value)
            self.err(path, "expected 0/1 or female/male (f/m)")
            return None
        if isinstance(value, list | dict):
            self.err(path, f"expected a single number for {name}, got {_describe(value)}")
            return None
        return self.number(spec, value, path)

    # ---- metadata --------------------------------------------------------------------

    def parse_units(self, raw: object, path: str) -> None:
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.err(path, 'expected an object such as {"Temp": "degF"}')
            return
        for key, unit in raw.items():
            upath = f"{path}.{key}"
            name = canonical_name(key)
            if name is None:
                self.err(upath, f"unknown variable {key!r}")
                continue
            if not isinstance(unit, str):
                self.err(upath, f"expected a unit string, got {_describe(unit)}")
                self.bad_units.add(name)
                continue
            conv = VARIABLES[name].conversions.get(normalise_unit(unit))
            if conv is None:
                known = _known_units(VARIABLES[name])
                self.err(upath, f"unknown unit {unit!r} for {name}; accepted: {known}")
                self.bad_units.add(name)
                continue
            self.units[name] = conv

    def parse_history(self, raw: object, path: str) -> PatientHistory | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.err(path, 'expected an object {"conditions": [...], "medications": [...]}')
            return None
        lists: dict[str, list[str]] = {"conditions": [], "medications": []}
        for key, items in raw.items():
            kpath = f"{path}.{key}"
            if key not in lists:
                self.err(kpath, 'unknown key; expected "conditions" or "medications"')
                continue
            if items is None:
                continue
            if not isinstance(items, list):
                self.err(kpath, "expected a list of strings")
                continue
            if len(items) > MAX_HISTORY_ITEMS:
                self.err(kpath, f"at most {MAX_HISTORY_ITEMS} entries")
                continue
            for i, item in enumerate(items):
                if not isinstance(item, str):
                    self.err(f"{kpath}[{i}]", f"expected a string, got {_describe(item)}")
                elif len(item) > MAX_HISTORY_ITEM_CHARS:
                    self.err(f"{kpath}[{i}]", f"at most {MAX_HISTORY_ITEM_CHARS} characters")
                elif item.strip():
                    lists[key].append(item.strip())
        return PatientHistory.model_construct(
            conditions=lists["conditions"], medications=lists["medications"]
        )


def _unit_hint(spec: VariableSpec, x: float) -> str:
    if spec.name == "Temp" and 77 <= x <= 113:
        return ' (in °F? send "units": {"Temp": "degF"})'
    if spec.name == "FiO2" and 21 <= x <= 100:
        return ' (a percentage? send "units": {"FiO2": "%"})'
    return ""


def _known_units(spec: VariableSpec) -> str:
    return ", ".join(sorted(spec.conversions)) or "none (unitless)"


def _hours(delta_seconds: float) -> float:
    return delta_seconds / 3600.0


# --------------------------------------------------------------------------------------------
# The common case in one pass: numbers and lists of numbers, no units, no time series, nothing
# wrong. Anything else makes `_parse_common` return None and goes through `_parse_general`,
# which reads every form and reports every error: results and errors are always the general
# parser's, the common case just gets there sooner.

_SERIES: Final = 0
_SCALAR: Final = 1
_GENDER: Final = 2


class _Entry(NamedTuple):
    name: str
    low: float
    high: float
    integer: bool
    binary: bool
    kind: int


def _entries() -> dict[str, _Entry]:
    """Each spelling `canonical_name` accepts as it is (names, aliases, their lower case),
    by which a variable is found with one lookup."""
    table: dict[str, _Entry] = {}
    for spec in VARIABLES.values():
        if spec.name in SERIES_VARIABLES:
            kind = _SERIES
        elif spec.name == "Gender":
            kind = _GENDER
        else:
            kind = _SCALAR
        entry = _Entry(
            spec.name, spec.low, spec.high, spec.integer, spec.name in BINARY_VARIABLES, kind
        )
        for key in (spec.name, *spec.aliases):
            for spelling in (key, key.lower()):
                # a spelling that is also a request key (`notes`, `units`, ...) is read as that
                if canonical_name(spelling) == spec.name and spelling.lower() not in _META_KEYS:
                    table[spelling] = entry
    return table


_ENTRIES: Final = _entries()
_NUMBER_TYPES: Final = frozenset({float, int})
_FLOAT_TYPE: Final = frozenset({float})


def _scalar(entry: _Entry, value: object) -> float | None:
    """A valid single value as a float, else None (the general parser then says why)."""
    if type(value) is float or type(value) is int:
        if not entry.low <= value <= entry.high:  # NaN fails; so do huge ints, before float()
            return None
        x = float(value)
        if entry.integer and not x.is_integer():
            return None
        return x
    if type(value) is bool and entry.binary:
        return 1.0 if value else 0.0
    if type(value) is str and entry.name == "Consciousness":
        code = CONSCIOUSNESS_CODES.get(value.strip().lower())
        return None if code is None else float(code)
    return None


def _numbers(entry: _Entry, values: list[Any]) -> tuple[float, ...] | None:
    """A valid list of plain numbers as floats (newest first), else None."""
    if not 0 < len(values) <= MAX_POINTS_PER_VARIABLE:
        return None
    if _FLOAT_TYPE.issuperset(map(type, values)):
        floats = True
    elif _NUMBER_TYPES.issuperset(map(type, values)):
        floats = False
    else:
        return None
    # the range is checked before float(): an integer can be too large for a float
    if min(values) < entry.low or max(values) > entry.high:
        return None
    xs = tuple(values) if floats else tuple(map(float, values))
    # min and max can step over a NaN: a NaN (or an infinity) makes the sum non-finite
    if not math.isfinite(sum(xs)):
        return None
    if entry.integer and not all(x.is_integer() for x in xs):
        return None
    return xs


def _parse_common(raw: dict[Any, Any]) -> HourlyPatient | None:
    """The patient when `raw` is of the common, valid kind; None for anything else."""
    series: dict[str, tuple[float, ...]] = {}
    seen: set[str] = set()
    scalars: dict[str, float] = {}
    patient_id: str | None = None
    notes: str | None = None
    history: PatientHistory | None = None
    # the top-level keys; the content of `vitals` and `labs` is read where they stand
    pending: list[Any] = [iter(raw.items())]
    top = True
    while pending:
        for key, value in pending[-1]:
            entry = _ENTRIES.get(key)
            if entry is None:
                meta = (_META_KEYS.get(key) or _META_KEYS.get(key.lower())) if top else None
                if meta is not None:
                    if meta == "vitals" or meta == "labs":
                        if value is None:
                            continue
                        if type(value) is not dict:
                            return None
                        pending.append(iter(value.items()))
                        top = False
                        break
                    if value is None:
                        if meta == "patient_history":
                            history = None
                        continue
                    if meta == "patient_id":
                        if type(value) is str and 0 < len(value) <= MAX_PATIENT_ID_CHARS:
                            patient_id = value
                        elif type(value) is int and abs(value) < _MAX_INT_ID:
                            patient_id = str(value)
                        else:
                            return None
                    elif meta == "notes":
                        if type(value) is not str or len(value) > MAX_NOTES_CHARS:
                            return None
                        notes = value
                    elif meta == "patient_history":
                        parser = _Parser()
                        history = parser.parse_history(value, key)
                        if parser.errors:
                            return None
                    else:  # units: conversions are for the general parser
                        return None
                    continue
                entry = _ENTRIES.get(key.lower())
                if entry is None:
                    if key.lower() in IGNORED_NAMES:
                        continue
                    return None
            name = entry.name
            if name in seen:
                return None
            seen.add(name)
            if value is None:
                continue
            kind = entry.kind
            if kind == _SERIES:
                if type(value) is list:
                    xs = _numbers(entry, value)
                    if xs is None:
                        return None
                    series[name] = xs
                    continue
                x = _scalar(entry, value)
                if x is None:
                    return None
                series[name] = (x,)
            elif kind == _GENDER:
                if type(value) is str:
                    code = _GENDER_WORDS.get(value.strip().lower())
                    if code is None:
                        return None
                elif (type(value) is int or type(value) is float) and value in (0, 1):
                    code = int(value)
                else:
                    return None
                scalars[name] = float(code)
            else:
                x = _scalar(entry, value)
                if x is None:
                    return None
                scalars[name] = x
        else:
            # this mapping is done: back to the one that held it
            pending.pop()
            top = len(pending) == 1
    if not series:
        return None
    gender = scalars.get("Gender")
    return HourlyPatient(
        patient_id=patient_id,
        hourly=series,
        age=scalars.get("Age"),
        gender=None if gender is None else int(gender),
        iculos=scalars.get("ICULOS"),
        hosp_adm_time=scalars.get("HospAdmTime"),
        notes=notes,
        history=history,
    )


def parse_patient(raw: object, *, field_prefix: str = "") -> NormalizedPatient:
    """Validate and normalise one patient in either input form.

    Raises InvalidInput naming every bad field as a dotted path (e.g. `vitals.HR[2].ts`), with
    `field_prefix` prepended (`patients[3]` in a batch).
    """
    if type(raw) is dict:
        common = _parse_common(raw)
        if common is not None:
            return common.normalized()
    return _parse_general(raw, field_prefix=field_prefix)


def parse_patient_hourly(
    raw: object, *, field_prefix: str = ""
) -> HourlyPatient | NormalizedPatient:
    """`parse_patient`, but a request of numbers and lists of numbers only (no time series,
    no units: the common kind) comes back as an `HourlyPatient`, without `Observation`s.

    Raises InvalidInput exactly as `parse_patient` does.
    """
    if type(raw) is dict:
        common = _parse_common(raw)
        if common is not None:
            return common
    return _parse_general(raw, field_prefix=field_prefix)


def _parse_general(raw: object, *, field_prefix: str = "") -> NormalizedPatient:
    """Every form and every error: the reference `_parse_common` must agree with."""
    if not isinstance(raw, dict):
        raise InvalidInput.for_fields(
            [
                FieldError(
                    field=field_prefix or "body",
                    message=f"expected a JSON object (a patient), got {_describe(raw)}",
                )
            ]
        )
    p = _Parser()
    patient_id: str | None = None
    notes: str | None = None
    history: PatientHistory | None = None
    # (canonical name, path, value) in input order; containers flattened
    items: list[tuple[str, str, object]] = []
    seen: dict[str, str] = {}

    units_raw: object = None
    units_key = "units"
    for key, value in raw.items():
        meta = _META_KEYS.get(key) or _META_KEYS.get(key.lower())
        if meta == "units":
            units_raw, units_key = value, key
            break
    p.parse_units(units_raw, units_key)

    def add(key: str, value: object, path: str) -> None:
        name = canonical_name(key)
        if name is None:
            if key.lower() not in IGNORED_NAMES:
                p.err(path, f"unknown variable {key!r}")
            return
        first = seen.get(name)
        if first is not None:
            p.err(path, f"{name} given twice (also as {first})")
            return
        seen[name] = path
        if value is not None:
            items.append((name, path, value))

    for key, value in raw.items():
        meta = _META_KEYS.get(key) or _META_KEYS.get(key.lower())
        if meta is None:
            add(key, value, key)
        elif meta == "vitals" or meta == "labs":
            if value is None:
                continue
            if not isinstance(value, dict):
                p.err(key, "expected an object mapping variable names to values")
                continue
            for vkey, vvalue in value.items():
                add(vkey, vvalue, f"{key}.{vkey}")
        elif meta == "patient_id":
            if value is None:
                continue
            if isinstance(value, str) and 0 < len(value) <= MAX_PATIENT_ID_CHARS:
                patient_id = value
            elif type(value) is int and abs(value) < _MAX_INT_ID:
                patient_id = str(value)
            else:
                p.err(key, f"expected a string of 1 to {MAX_PATIENT_ID_CHARS} characters")
        elif meta == "notes":
            if value is None:
                continue
            if not isinstance(value, str):
                p.err(key, f"expected a string, got {_describe(value)}")
            elif len(value) > MAX_NOTES_CHARS:
                p.err(key, f"at most {MAX_NOTES_CHARS} characters")
            else:
                notes = value
        elif meta == "patient_history":
            history = p.parse_history(value, key)

    demo: dict[str, float] = {}
    plain: dict[str, list[float]] = {}
    timed: dict[str, list[tuple[datetime, float]]] = {}
    for name, path, value in items:
        if name in SERIES_VARIABLES:
            if isinstance(value, list) and value and isinstance(value[0], dict):
                points = p.time_series(VARIABLES[name], value, path)
                if points is not None:
                    timed[name] = points
            else:
                values = p.variable(VARIABLES[name], value, path)
                if values is not None:
                    plain[name] = values
        else:
            x = p.demographic(name, value, path)
            if x is not None:
                demo[name] = x

    if not p.errors and not plain and not timed:
        p.err("vitals", "no vital signs or laboratory values were sent")
    if p.errors:
        raise InvalidInput.for_fields(
            [FieldError(field=_join(field_prefix, path), message=msg) for path, msg in p.errors]
        )

    series: dict[str, tuple[Observation, ...]] = {}
    for name, values in plain.items():
        n = len(values) - 1
        # newest first on the wire; stored oldest first
        series[name] = tuple(Observation(values[n - i], float(n - i)) for i in range(n + 1))
    reference: datetime | None = None
    if timed:
        reference = max(ts for points in timed.values() for ts, _ in points)
        for name, points in timed.items():
            latest: dict[datetime, float] = {}
            for ts, x in points:
                latest[ts] = x  # of duplicate times the one given last wins
            series[name] = tuple(
                Observation(latest[ts], _hours((reference - ts).total_seconds()))
                for ts in sorted(latest)
            )

    gender = demo.get("Gender")
    return NormalizedPatient(
        patient_id=patient_id,
        series=series,
        age=demo.get("Age"),
        gender=None if gender is None else int(gender),
        iculos=demo.get("ICULOS"),
        hosp_adm_time=demo.get("HospAdmTime"),
        notes=notes,
        history=history
        if history is not None
        else PatientHistory.model_construct(conditions=[], medications=[]),
        reference_time=reference,
    )


def batch_items(raw: object, *, max_items: int) -> Sequence[object]:
    """The patients of a `{"patients": [...]}` batch body, unparsed.

    Raises InvalidInput when the body is not of that shape and PayloadTooLarge when it holds
    more than `max_items` patients. Parse each with
    `parse_patient(item, field_prefix=f"patients[{i}]")` so that one bad patient fails alone.
    """
    if not isinstance(raw, dict) or "patients" not in raw:
        raise InvalidInput.for_fields(
            [FieldError(field="patients", message='expected {"patients": [patient, ...]}')]
        )
    extra = [k for k in raw if k != "patients"]
    if extra:
        raise InvalidInput.for_fields(
            [
                FieldError(field=k, message="unknown field; a batch has only `patients`")
                for k in extra
            ]
        )
    patients = raw["patients"]
    if not isinstance(patients, list) or not patients:
        raise InvalidInput.for_fields(
            [FieldError(field="patients", message="expected a non-empty list of patients")]
        )
    if len(patients) > max_items:
        raise PayloadTooLarge(
            f"A batch holds at most {max_items} patients; this one has {len(patients)}.",
            details={"max_items": max_items, "items": len(patients)},
        )
    return patients
