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
`InvalidInput` that names each bad field by its dotted path, as the client spelled it. The
common request (numbers and lists of numbers only) takes a one-pass path first
(`sepsis_shared.patient_common`) with the same results; the records are defined in
`sepsis_shared.patient_types` and the OpenAPI description in `sepsis_shared.patient_openapi`,
all re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sepsis_shared.errors import FieldError, InvalidInput, PayloadTooLarge
from sepsis_shared.patient_batch import read_common_batch
from sepsis_shared.patient_common import Deferred, check_deferred, read_common
from sepsis_shared.patient_openapi import (
    FLAT_EXAMPLE,
    SERIES_EXAMPLE,
    STRUCTURED_EXAMPLE,
    patient_batch_request_openapi,
    patient_request_openapi,
    patient_schema,
)
from sepsis_shared.patient_types import (
    GENDER_WORDS,
    MAX_HISTORY_ITEM_CHARS,
    MAX_HISTORY_ITEMS,
    MAX_INT_PATIENT_ID,
    MAX_NOTES_CHARS,
    MAX_PATIENT_ID_CHARS,
    MAX_POINTS_PER_VARIABLE,
    META_KEYS,
    HourlyPatient,
    NormalizedPatient,
    Observation,
    PatientHistory,
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
    "parse_patients_body",
    "parse_patients_hourly",
    "patient_batch_request_openapi",
    "patient_request_openapi",
    "patient_schema",
]


# --------------------------------------------------------------------------------------------
# Parsing

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
                code = GENDER_WORDS.get(value.strip().lower())
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
    if type(raw) is dict:
        common = read_common(raw)
        if common is not None:
            return common.normalized()
    return _parse_general(raw, field_prefix=field_prefix)


def parse_patient_hourly(
    raw: object, *, field_prefix: str = ""
) -> HourlyPatient | NormalizedPatient:
    """`parse_patient`, but a request of numbers and lists of numbers only (no time series,
    no units, no history: the common kind) comes back as an `HourlyPatient`, without
    `Observation`s.

    Raises InvalidInput exactly as `parse_patient` does.
    """
    if type(raw) is dict:
        common = read_common(raw)
        if common is not None:
            return common
    return _parse_general(raw, field_prefix=field_prefix)


def parse_patients_hourly(
    items: Sequence[object],
    *,
    prefix: str = "patients",
    known: Sequence[HourlyPatient | None] | None = None,
) -> list[HourlyPatient | NormalizedPatient | InvalidInput]:
    """`parse_patient_hourly` of each item (field prefix `prefix[i]`), or the InvalidInput it
    raises, in item order. `known`: item i already read as `known[i]` where that is not None
    (as `read_common_batch` gives them).

    The same answers, sooner: the lists of numbers of the common items are checked once per
    variable across all items (types, range, finiteness) rather than list by list; only a
    variable whose values do not all pass is checked list by list, to find whose they are.
    """
    out: list[HourlyPatient | NormalizedPatient | InvalidInput | None] = []
    deferred: Deferred = {}
    if known is None or len(known) != len(items):
        known = [None] * len(items)
    for i, (raw, given) in enumerate(zip(items, known, strict=True)):
        if given is not None:
            out.append(given)
        else:
            out.append(read_common(raw, deferred, i) if type(raw) is dict else None)
    failed = check_deferred(deferred)
    done: list[HourlyPatient | NormalizedPatient | InvalidInput] = []
    for i, parsed in enumerate(out):
        if parsed is None or i in failed:
            try:
                parsed = _parse_general(items[i], field_prefix=f"{prefix}[{i}]")
            except InvalidInput as exc:
                parsed = exc
        done.append(parsed)
    return done


def _parse_general(raw: object, *, field_prefix: str = "") -> NormalizedPatient:
    """Every form and every error: the reference the common path (`read_common`) agrees with."""
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
        meta = META_KEYS.get(key) or META_KEYS.get(key.lower())
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
        meta = META_KEYS.get(key) or META_KEYS.get(key.lower())
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
            elif type(value) is int and abs(value) < MAX_INT_PATIENT_ID:
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


def parse_patients_body(
    body: bytes, *, max_items: int, decode: Callable[[bytes], object]
) -> list[HourlyPatient | NormalizedPatient | InvalidInput]:
    """Each patient of a `{"patients": [...]}` body (`batch_items` of `decode(body)`) parsed
    by `parse_patients_hourly`, in order; raises what `decode` and `batch_items` raise.

    A body of common patients only is read straight from its bytes (`read_common_batch`,
    the same answers in about half the time); the patients that path leaves go through
    `parse_patients_hourly`, and a body it cannot read at all through `decode` first.
    """
    fast = read_common_batch(body, max_items=max_items)
    if fast is not None:
        accepted: list[HourlyPatient | NormalizedPatient | InvalidInput] = [
            p for p in fast if p is not None
        ]
        if len(accepted) == len(fast):
            return accepted
    items = batch_items(decode(body), max_items=max_items)
    return parse_patients_hourly(items, prefix="patients", known=fast)


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
