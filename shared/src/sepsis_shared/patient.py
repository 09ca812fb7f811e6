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

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from sepsis_shared.errors import FieldError, InvalidInput, PayloadTooLarge
from sepsis_shared.variables import (
    BINARY_VARIABLES,
    CONSCIOUSNESS_CODES,
    DEMOGRAPHICS,
    IGNORED_NAMES,
    SERIES_VARIABLES,
    VARIABLES,
    VariableSpec,
    canonical_name,
    normalise_unit,
)

__all__ = [
    "MAX_HISTORY_ITEMS",
    "MAX_NOTES_CHARS",
    "MAX_POINTS_PER_VARIABLE",
    "NormalizedPatient",
    "Observation",
    "PatientHistory",
    "batch_items",
    "parse_patient",
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
            x = float(value)
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


def parse_patient(raw: object, *, field_prefix: str = "") -> NormalizedPatient:
    """Validate and normalise one patient in either input form.

    Raises InvalidInput naming every bad field as a dotted path (e.g. `vitals.HR[2].ts`), with
    `field_prefix` prepended (`patients[3]` in a batch).
    """
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
            elif type(value) is int:
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


# --------------------------------------------------------------------------------------------
# OpenAPI: routes read the raw body themselves, so they document it with `openapi_extra`.

FLAT_EXAMPLE: Final[Mapping[str, Any]] = {
    "HR": 110,
    "SBP": 95,
    "DBP": 60,
    "Temp": 38.5,
    "Resp": 22,
    "O2Sat": 94,
    "WBC": 15.5,
    "Lactate": 2.5,
    "Creatinine": 1.8,
    "Age": 65,
    "Gender": 1,
}
"""The original deployment guide's `/classify` request (DESIGN §8)."""

STRUCTURED_EXAMPLE: Final[Mapping[str, Any]] = {
    "patient_id": "TEST001",
    "vitals": {"HR": 118, "SBP": 88, "Temp": 38.9, "Lactate": 3.2, "WBC": 18.5},
    "notes": "Patient appears lethargic, skin mottled on lower extremities",
}
"""The original deployment guide's `/genai-classify` request (DESIGN §8)."""

SERIES_EXAMPLE: Final[Mapping[str, Any]] = {
    "patient_id": "ICU-7-0042",
    "vitals": {
        "HR": [{"val": 118, "ts": "2026-02-07T18:30"}, {"val": 104, "ts": "2026-02-07T17:30"}],
        "SpO2": [92, 94, 95],
        "RR": 24,
        "Temp": 101.8,
        "Lactate": 3.1,
        "GCS": 14,
        "Age": 71,
        "Gender": "female",
    },
    "units": {"Temp": "degF"},
    "notes": "New confusion since this afternoon.",
    "patient_history": {"conditions": ["type 2 diabetes"], "medications": ["metformin"]},
}


_POINT_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "required": ["val", "ts"],
    "properties": {
        "val": {
            "type": ["number", "string"],
            "description": "The value (a string only for ACVPU).",
        },
        "ts": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601; a time without offset is UTC.",
        },
    },
    "additionalProperties": False,
}


def _value_schema(spec: VariableSpec) -> dict[str, Any]:
    unit = f" ({spec.unit})" if spec.unit else ""
    number: dict[str, Any] = {"type": "number", "minimum": spec.low, "maximum": spec.high}
    if spec.name == "Consciousness":
        number = {
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": 4},
                {"type": "string", "enum": ["A", "C", "V", "P", "U"]},
            ]
        }
    aliases = f" Also accepted as: {', '.join(spec.aliases)}." if spec.aliases else ""
    return {
        "description": f"{spec.description}{unit}, accepted {spec.range_text}.{aliases}",
        "oneOf": [
            number,
            {
                "type": "array",
                "description": "One value per hour, newest first.",
                "items": number,
                "minItems": 1,
                "maxItems": MAX_POINTS_PER_VARIABLE,
            },
            {
                "type": "array",
                "description": "Time series in any order; sorted by `ts`.",
                "items": _POINT_SCHEMA,
                "minItems": 1,
                "maxItems": MAX_POINTS_PER_VARIABLE,
            },
        ],
    }


def _demographic_schema(spec: VariableSpec) -> dict[str, Any]:
    unit = f" ({spec.unit})" if spec.unit else ""
    if spec.name == "Gender":
        return {
            "description": "Sex: 0 = female, 1 = male, or the words female/male (f/m).",
            "oneOf": [
                {"type": "integer", "enum": [0, 1]},
                {"type": "string", "enum": ["female", "male", "f", "m"]},
            ],
        }
    return {
        "type": "number",
        "minimum": spec.low,
        "maximum": spec.high,
        "description": f"{spec.description}{unit}.",
    }


def _meta_properties() -> dict[str, Any]:
    return {
        "patient_id": {
            "type": "string",
            "maxLength": MAX_PATIENT_ID_CHARS,
            "description": "The client's identifier, echoed back; never logged.",
        },
        "notes": {
            "type": "string",
            "maxLength": MAX_NOTES_CHARS,
            "description": "Free-text nursing notes (used by the GenAI pathway).",
        },
        "patient_history": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "conditions": {"type": "array", "items": {"type": "string"}},
                "medications": {"type": "array", "items": {"type": "string"}},
            },
        },
        "units": {
            "type": "object",
            "description": (
                "Units of values not sent in the canonical unit, by variable: Temp degF; "
                "Lactate mg/dL; Creatinine, Bilirubin_total, Bilirubin_direct umol/L; "
                "Glucose mmol/L; FiO2 %; Hgb g/L. An unknown unit is a 422."
            ),
            "additionalProperties": {"type": "string"},
            "example": {"Temp": "degF", "Lactate": "mg/dL"},
        },
    }


def _patient_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    series = {n: _value_schema(VARIABLES[n]) for n in VARIABLES if n in SERIES_VARIABLES}
    demo = {n: _demographic_schema(VARIABLES[n]) for n in DEMOGRAPHICS}
    meta = _meta_properties()
    flat = {
        "title": "Flat patient",
        "type": "object",
        "description": (
            "The original system's form: variables at the top level. Names are the PhysioNet "
            "2019 ones (case-insensitive, common aliases accepted); units as listed."
        ),
        "properties": {**series, **demo, **meta},
        "additionalProperties": False,
    }
    vitals = {
        "type": "object",
        "description": "Vital signs, labs and bedside inputs by name (and optionally the "
        "demographics).",
        "properties": {**series, **demo},
        "additionalProperties": False,
    }
    structured = {
        "title": "Structured patient",
        "type": "object",
        "required": ["vitals"],
        "properties": {
            **meta,
            "vitals": vitals,
            "labs": {
                "type": "object",
                "description": "Optional second map, e.g. for laboratory values; the same names "
                "and value forms as `vitals`.",
            },
            **demo,
        },
        "additionalProperties": False,
    }
    return flat, structured


def patient_schema() -> dict[str, Any]:
    """JSON schema of one patient: a oneOf of the flat and the structured forms."""
    flat, structured = _patient_schemas()
    return {"oneOf": [flat, structured]}


_EXAMPLES: Final[Mapping[str, Any]] = {
    "flat": {"summary": "Flat form (original system)", "value": FLAT_EXAMPLE},
    "structured": {"summary": "Structured form with notes", "value": STRUCTURED_EXAMPLE},
    "series": {"summary": "Time series, lists, aliases and units", "value": SERIES_EXAMPLE},
}


def _fresh(doc: dict[str, Any]) -> dict[str, Any]:
    # FastAPI merges openapi_extra into its document: hand out copies, never shared constants.
    return copy.deepcopy(doc)


def patient_request_openapi() -> dict[str, Any]:
    """The `openapi_extra` of a single-patient route: its request body and examples."""
    return _fresh(
        {
            "requestBody": {
                "required": True,
                "description": "One patient, in the flat or the structured form.",
                "content": {
                    "application/json": {
                        "schema": patient_schema(),
                        "examples": dict(_EXAMPLES),
                    }
                },
            }
        }
    )


def patient_batch_request_openapi(max_items: int) -> dict[str, Any]:
    """The `openapi_extra` of a batch route: `{"patients": [...]}` of up to `max_items`."""
    return _fresh(
        {
            "requestBody": {
                "required": True,
                "description": (
                    f"Up to {max_items} patients, each in either form. A bad patient yields an "
                    "error entry at its index; the others are still assessed."
                ),
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["patients"],
                            "properties": {
                                "patients": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": max_items,
                                    "items": patient_schema(),
                                }
                            },
                            "additionalProperties": False,
                        },
                        "examples": {
                            "mixed": {
                                "summary": "Both forms in one batch",
                                "value": {"patients": [FLAT_EXAMPLE, STRUCTURED_EXAMPLE]},
                            }
                        },
                    }
                },
            }
        }
    )
