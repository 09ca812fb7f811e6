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
time is UTC). A JSON ``null`` where a whole variable's value goes means "not measured" and is
skipped; anywhere else it is an error.

What is refused (one `InvalidInput`, a 422 naming every bad field by its dotted path as the
client spelled it, all errors of a patient collected): a wrong type, an unparseable timestamp,
an unknown variable or unit, an empty list, and a patient left with nothing to score.

What is tolerated, because real monitors and charts produce it, and never hidden: each case is
listed in the patient's `data_quality` with the field, time, value and reason.

- A value outside its variable's physiological range (`sepsis_shared.variables`), e.g. an
  arterial-line flush reading SBP 343, is left out; the rest of the series is used.
- A value outside its range with one obvious other reading, when no unit was sent for it, is
  read that way: FiO2 between 18 and 100 as a percentage (40 -> 0.40), FiO2 between 0.18 and
  0.21 (and 18-21 %) as room air 0.21, a temperature between 77 and 113 as °F.
- A time-series point dated more than `FUTURE_TOLERANCE` after the request arrived is left out
  (a clock or entry error would otherwise become the scored hour).
- Two points of one variable at the same time: the one given last is used, the other listed.

`parse_patient` then applies `sepsis_shared.intake` (values too old to count, bedside findings
from the notes). The records are defined in `sepsis_shared.patient_types` and the OpenAPI
description in `sepsis_shared.patient_openapi`, both re-exported here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from sepsis_shared.errors import FieldError, InvalidInput, PayloadTooLarge
from sepsis_shared.intake import InputLimits, take_in
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
    BedsideFinding,
    DataQualityIssue,
    NormalizedPatient,
    Observation,
    PatientHistory,
    QualityAction,
)
from sepsis_shared.variables import (
    BINARY_VARIABLES,
    CONSCIOUSNESS_CODES,
    IGNORED_NAMES,
    INFECTION_CODES,
    SERIES_VARIABLES,
    VARIABLES,
    VariableSpec,
    canonical_name,
    normalise_unit,
)

__all__ = [
    "FLAT_EXAMPLE",
    "FUTURE_TOLERANCE",
    "MAX_HISTORY_ITEMS",
    "MAX_NOTES_CHARS",
    "MAX_POINTS_PER_VARIABLE",
    "SERIES_EXAMPLE",
    "STRUCTURED_EXAMPLE",
    "BedsideFinding",
    "DataQualityIssue",
    "InputLimits",
    "NormalizedPatient",
    "Observation",
    "PatientHistory",
    "batch_items",
    "parse_patient",
    "parse_patients_body",
    "patient_batch_request_openapi",
    "patient_request_openapi",
    "patient_schema",
]


# --------------------------------------------------------------------------------------------
# Parsing

FUTURE_TOLERANCE: Final = timedelta(minutes=5)
"""A point dated up to this long after the request arrived is taken as sent (clock skew)."""

_VAL_KEYS: Final = ("val", "value")
_TS_KEYS: Final = ("ts", "timestamp", "time")
_WORD_CODES: Final = {"Consciousness": CONSCIOUSNESS_CODES, "Infection": INFECTION_CODES}
_WORD_HINTS: Final = {
    "Consciousness": "expected an ACVPU level: A, C, V, P or U (or its code 0-4)",
    "Infection": "expected none, suspected or confirmed (or its code 0-2)",
}

_Converter = Callable[[float], float]
_HOURS: Final = tuple(float(h) for h in range(MAX_POINTS_PER_VARIABLE))
# Observation(value, hours_ago) made by tuple.__new__ directly, as its generated __new__ does,
# at a third of the cost (a list of hourly values is most of what a request carries)
_observation: Final[Callable[[tuple[float, float]], Observation]] = functools.partial(
    tuple.__new__, Observation
)


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


def _at(path: str, index: int | None) -> str:
    return path if index is None else f"{path}[{index}]"


def _num(x: float) -> str:
    return f"{x:g}"


def _expected_number(spec: VariableSpec, value: object) -> str:
    return f"expected a number for {spec.name}, got {_describe(value)}"


def _another_reading(spec: VariableSpec, x: float) -> tuple[float, str] | None:
    """The one obvious reading of an out-of-range value sent without a unit, and its words."""
    room_air = VARIABLES["FiO2"].low
    if spec.name == "FiO2":
        fraction = x / 100.0 if 18.0 <= x <= 100.0 else x
        if 0.18 <= fraction < room_air:
            return room_air, f"FiO2 {_num(x)} read as room air ({room_air:g})"
        if room_air <= fraction <= 1.0 and fraction != x:
            return fraction, f"FiO2 {_num(x)} read as {_num(x)} % ({fraction:.2f})"
    if spec.name == "Temp" and 77.0 <= x <= 113.0:
        celsius = (x - 32.0) * 5.0 / 9.0
        return celsius, f"temperature {_num(x)} read as °F ({celsius:.1f} °C)"
    return None


_NAIVE_READ_AS: Final = timezone(timedelta(0), "UTC, no offset sent")
"""The zone of a time sent without an offset: UTC, as a distinct object so that such times
can be told apart (they compare and subtract as UTC)."""


@dataclass(slots=True)
class _Issue:
    """A data-quality issue while parsing (`hours_ago` of a series point is known only once
    the scored hour is: `at` holds its time until then)."""

    path: str
    name: str
    sent: float
    action: QualityAction
    reason: str
    used: float | None = None
    time: str | None = None
    hours_ago: float | None = None
    at: datetime | None = None


class _Parser:
    """One patient's parse: collects errors instead of stopping at the first, and the inputs
    it did not take as sent."""

    __slots__ = ("bad_units", "errors", "issues", "naive_times", "units", "zoned_times")

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.issues: list[_Issue] = []
        self.units: dict[str, _Converter] = {}
        # the points whose time carried no offset, by variable (read as UTC), and whether any
        # time of the patient carried one
        self.naive_times: dict[str, list[str]] = {}
        self.zoned_times = False
        # variables whose unit was rejected: their values are not range-checked a second time
        self.bad_units: set[str] = set()

    def err(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def issue(
        self,
        path: str,
        name: str,
        sent: float,
        action: QualityAction,
        reason: str,
        *,
        used: float | None = None,
        hours_ago: float | None = None,
    ) -> _Issue:
        record = _Issue(path, name, sent, action, reason, used=used, hours_ago=hours_ago)
        self.issues.append(record)
        return record

    # ---- single values -------------------------------------------------------------------

    def number(
        self,
        spec: VariableSpec,
        value: object,
        path: str,
        index: int | None = None,
        *,
        hours_ago: float | None = None,
    ) -> float | None:
        """One measurement as a float in the canonical unit; None when it is refused (an error
        recorded) or left out (an issue recorded)."""
        if type(value) is float or type(value) is int:
            try:
                x = float(value)
            except OverflowError:  # an integer beyond any float is beyond every range too
                x = math.inf if value > 0 else -math.inf
        elif isinstance(value, bool):
            if spec.name not in BINARY_VARIABLES:
                self.err(
                    _at(path, index), f"expected a number for {spec.name}, got {_describe(value)}"
                )
                return None
            return 1.0 if value else 0.0
        elif isinstance(value, str) and spec.name in _WORD_CODES:
            code = _WORD_CODES[spec.name].get(value.strip().lower())
            if code is None:
                self.err(_at(path, index), _WORD_HINTS[spec.name])
                return None
            return float(code)
        else:
            self.err(_at(path, index), _expected_number(spec, value))
            return None
        if math.isnan(x) or (math.isinf(x) and type(value) is float):
            self.err(_at(path, index), f"expected a finite number for {spec.name}")
            return None
        conv = self.units.get(spec.name)
        if conv is not None:
            x = conv(x)
        elif spec.name in self.bad_units:
            return None
        if x < spec.low or x > spec.high:
            sent = float(value) if math.isfinite(x) else x
            other = None if conv is not None else _another_reading(spec, x)
            if other is not None:
                self.issue(
                    _at(path, index),
                    spec.name,
                    sent,
                    "read_as",
                    other[1],
                    used=other[0],
                    hours_ago=hours_ago,
                )
                return other[0]
            self.issue(
                _at(path, index),
                spec.name,
                sent,
                "left_out",
                f"{spec.name} outside the physiological range {spec.range_text}: not a "
                "measurement this assessment can use" + _unit_hint(spec, x),
                hours_ago=hours_ago,
            )
            return None
        if spec.integer and not x.is_integer():
            self.err(_at(path, index), f"{spec.name} must be a whole number")
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
            return ts.replace(tzinfo=_NAIVE_READ_AS)
        return ts

    # ---- one variable --------------------------------------------------------------------

    def variable(self, spec: VariableSpec, value: object, path: str) -> list[float] | None:
        """A scalar or a list of numbers as floats, newest first, NaN where a value was left
        out (its hour is still its hour); None after an error or with nothing left."""
        if not isinstance(value, list):
            if isinstance(value, dict):
                self.err(
                    path,
                    "expected a number, a list of numbers (newest first) or a time series "
                    '[{"val": ..., "ts": ...}], got an object',
                )
                return None
            x = self.number(spec, value, path, hours_ago=0.0)
            return None if x is None else [x]
        if not value:
            self.err(path, f"{spec.name} is an empty list; leave the variable out instead")
            return None
        if len(value) > MAX_POINTS_PER_VARIABLE:
            self.err(path, f"at most {MAX_POINTS_PER_VARIABLE} points per variable")
            return None
        if (
            spec.name not in self.units
            and all(type(v) is float or type(v) is int for v in value)
            and spec.low <= min(value)
            and max(value) <= spec.high
        ):
            # the usual list: every value a number inside the range (NaN cannot pass both
            # bounds test and the sum); each is then taken as it is
            xs = [float(v) for v in value]
            if math.isfinite(sum(xs)) and (not spec.integer or all(x.is_integer() for x in xs)):
                return xs
        out: list[float] = []
        ok = True
        for i, item in enumerate(value):
            if isinstance(item, dict):
                self.err(f"{path}[{i}]", "mixes numbers and time-series points in one list")
                ok = False
                continue
            errors = len(self.errors)
            x = self.number(spec, item, path, i, hours_ago=float(i))
            if x is None:
                ok = ok and len(self.errors) == errors
                out.append(math.nan)
            else:
                out.append(x)
        if not ok or all(math.isnan(x) for x in out):
            return None
        return out

    def time_series(
        self, spec: VariableSpec, items: list[Any], path: str, now: datetime
    ) -> list[tuple[datetime, float, str]] | None:
        """A time series as (ts, value, path) in input order; None after an error. Points
        left out are not returned (their issues are recorded)."""
        if len(items) > MAX_POINTS_PER_VARIABLE:
            self.err(path, f"at most {MAX_POINTS_PER_VARIABLE} points per variable")
            return None
        out: list[tuple[datetime, float, str]] = []
        ok = True
        latest = now + FUTURE_TOLERANCE
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
            issues = len(self.issues)
            x = self.number(spec, item[val_key], f"{ipath}.{val_key}")
            ts = self.timestamp(item[ts_key], f"{ipath}.{ts_key}")
            if ts is not None and ts.tzinfo is _NAIVE_READ_AS:
                self.naive_times.setdefault(spec.name, []).append(ipath)
            elif ts is not None:
                self.zoned_times = True
            record = self.issues[-1] if len(self.issues) > issues else None
            if ts is None:
                ok = False
                continue
            if record is not None:
                record.time, record.at = item[ts_key], ts
            if x is None:
                ok = ok and record is not None  # left out, or refused
                continue
            if ts > latest:
                future = self.issue(
                    ipath,
                    spec.name,
                    _sent(item[val_key], x),
                    "left_out",
                    "dated after the request arrived (a clock or entry error): not used",
                )
                future.time = item[ts_key]
                continue
            out.append((ts, x, ipath))
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
        return PatientHistory(conditions=lists["conditions"], medications=lists["medications"])


def _unit_hint(spec: VariableSpec, x: float) -> str:
    if spec.name == "Temp" and 77 <= x <= 113:
        return ' (in °F? send "units": {"Temp": "degF"})'
    if spec.name == "FiO2" and 1 < x <= 100:
        return ' (a percentage? send "units": {"FiO2": "%"})'
    return ""


def _known_units(spec: VariableSpec) -> str:
    return ", ".join(sorted(spec.conversions)) or "none (unitless)"


def _sent(value: object, parsed: float) -> float:
    """The value as sent, where it was a number."""
    return float(value) if type(value) is int or type(value) is float else parsed


_NO_HISTORY: Final = PatientHistory(conditions=[], medications=[])
"""The history of a patient sent without one (frozen, so one instance serves all)."""


@functools.lru_cache(maxsize=4096)
def _meta(key: str) -> str | None:
    """What a request key holds when it is not a variable (`META_KEYS`, any case); the same
    few keys come in every request."""
    return META_KEYS.get(key) or META_KEYS.get(key.lower())


def _hours(delta_seconds: float) -> float:
    return delta_seconds / 3600.0


def parse_patient(
    raw: object,
    *,
    field_prefix: str = "",
    limits: InputLimits | None = None,
    now: datetime | None = None,
) -> NormalizedPatient:
    """Validate and normalise one patient in either input form, then take it in
    (`sepsis_shared.intake.take_in` with `limits`, default `InputLimits()`).

    Raises InvalidInput naming every bad field as a dotted path (e.g. `vitals.HR[2].ts`), with
    `field_prefix` prepended (`patients[3]` in a batch). `now`: when the request arrived
    (default: the clock), for points dated in the future.
    """
    parsed = _parse(raw, field_prefix=field_prefix, now=now or datetime.now(UTC))
    return take_in(parsed, limits or InputLimits(), field_prefix=field_prefix)


def _parse(raw: object, *, field_prefix: str, now: datetime) -> NormalizedPatient:
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
        if _meta(key) == "units":
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
        meta = _meta(key)
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
    timed: dict[str, list[tuple[datetime, float, str]]] = {}
    for name, path, value in items:
        if name in SERIES_VARIABLES:
            if isinstance(value, list) and value and isinstance(value[0], dict):
                points = p.time_series(VARIABLES[name], value, path, now)
                if points:
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
        left_out = [issue for issue in p.issues if issue.action == "left_out"]
        if left_out:
            # nothing to assess: each value that was left out is named with its reason
            for issue in left_out:
                p.err(issue.path, f"{issue.reason}; nothing else was left to assess")
        else:
            p.err("vitals", "no vital signs or laboratory values were sent")
    if p.errors:
        raise InvalidInput.for_fields(
            [FieldError(field=_join(field_prefix, path), message=msg) for path, msg in p.errors]
        )

    if p.zoned_times:
        # Times without an offset are UTC by the contract; beside times that carry one they
        # are more likely local times sent carelessly, so the answer says how they were read.
        for name, paths in p.naive_times.items():
            p.issue(
                paths[0],
                name,
                math.nan,
                "read_as",
                f"{len(paths)} time{'s' if len(paths) > 1 else ''} of {name} sent without a "
                "time zone, read as UTC, while other times of this patient carry one",
            )

    series: dict[str, tuple[Observation, ...]] = {}
    for name, values in plain.items():
        # newest first on the wire, value i from i hours before the scored hour; stored
        # oldest first, values left out (NaN, unequal to itself) skipped
        hourly = zip(reversed(values), _HOURS[len(values) - 1 :: -1], strict=True)
        series[name] = tuple(map(_observation, (o for o in hourly if o[0] == o[0])))
    reference: datetime | None = None
    if timed:
        reference = max(ts for points in timed.values() for ts, _, _ in points)
        for name, points in timed.items():
            latest: dict[datetime, tuple[float, str]] = {}
            for ts, x, path in points:
                earlier = latest.get(ts)
                if earlier is not None and earlier[0] != x:
                    p.issue(
                        earlier[1],
                        name,
                        earlier[0],
                        "left_out",
                        "two values at the same time: the one given last was used",
                    ).at = ts
                latest[ts] = (x, path)
            series[name] = tuple(
                Observation(latest[ts][0], _hours((reference - ts).total_seconds()))
                for ts in sorted(latest)
            )
        for issue in p.issues:
            if issue.at is not None:
                issue.hours_ago = _hours((reference - issue.at).total_seconds())

    gender = demo.get("Gender")
    return NormalizedPatient(
        patient_id=patient_id,
        series=series,
        age=demo.get("Age"),
        gender=None if gender is None else int(gender),
        iculos=demo.get("ICULOS"),
        hosp_adm_time=demo.get("HospAdmTime"),
        notes=notes,
        history=history if history is not None else _NO_HISTORY,
        reference_time=reference,
        sent_as=seen,
        data_quality=tuple(
            DataQualityIssue(
                field=_join(field_prefix, issue.path),
                variable=issue.name,
                time=issue.time,
                hours_ago=None if issue.hours_ago is None else round(issue.hours_ago, 3),
                value=issue.sent if math.isfinite(issue.sent) else None,
                action=issue.action,
                used_value=issue.used,
                reason=issue.reason,
            )
            for issue in p.issues
        ),
    )


def parse_patients_body(
    body: bytes,
    *,
    max_items: int,
    decode: Callable[[bytes], object],
    limits: InputLimits | None = None,
    now: datetime | None = None,
) -> list[NormalizedPatient | InvalidInput]:
    """Each patient of a `{"patients": [...]}` body parsed by `parse_patient` (field prefix
    `patients[i]`), or the InvalidInput it raised, in order; raises what `decode` and
    `batch_items` raise for the body as a whole."""
    items = batch_items(decode(body), max_items=max_items)
    arrived = now or datetime.now(UTC)
    out: list[NormalizedPatient | InvalidInput] = []
    for i, raw in enumerate(items):
        try:
            out.append(
                parse_patient(raw, field_prefix=f"patients[{i}]", limits=limits, now=arrived)
            )
        except InvalidInput as exc:
            out.append(exc)
    return out


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
