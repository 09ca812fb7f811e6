"""Generated patient requests for the parser tests: valid ones of the common kind, in either
form and any accepted spelling, and ones broken (or made uncommon) in one of many ways."""

from __future__ import annotations

import math
import random
from typing import Any

from sepsis_shared.patient import HourlyPatient, NormalizedPatient
from sepsis_shared.variables import (
    BEDSIDE_VARIABLES,
    BINARY_VARIABLES,
    PHYSIONET_VARIABLES,
    VARIABLES,
)

SERIES_NAMES = PHYSIONET_VARIABLES + BEDSIDE_VARIABLES


def normalized(parsed: HourlyPatient | NormalizedPatient) -> NormalizedPatient:
    return parsed.normalized() if isinstance(parsed, HourlyPatient) else parsed


def _value(rng: random.Random, name: str, *, numbers_only: bool = False) -> Any:
    spec = VARIABLES[name]
    if name in BINARY_VARIABLES and rng.random() < 0.3 and not numbers_only:
        return rng.random() < 0.5
    if name == "Consciousness" and rng.random() < 0.3 and not numbers_only:
        return rng.choice(["A", "c", " V ", "pain", "U"])
    roll = rng.random()
    if roll < 0.15:  # a boundary of the accepted range
        x = rng.choice([spec.low, spec.high])
    elif spec.integer:
        x = float(rng.randint(int(spec.low), int(spec.high)))
    else:
        x = round(rng.uniform(spec.low, spec.high), rng.choice([0, 1, 2, 4]))
        x = min(max(x, spec.low), spec.high)  # rounding may step past a bound
    if x == int(x) and rng.random() < 0.5:
        return int(x)  # JSON integers arrive as int
    return x


def _variable(rng: random.Random, name: str) -> Any:
    if name == "Consciousness" or (name in BINARY_VARIABLES and rng.random() < 0.5):
        return _value(rng, name)
    roll = rng.random()
    if roll < 0.4:
        return _value(rng, name)
    if roll < 0.95:
        # lists of flags or ACVPU letters are read by the general parser
        return [_value(rng, name, numbers_only=True) for _ in range(rng.randint(1, 12))]
    return None  # "not measured"


def _spelling(rng: random.Random, name: str) -> str:
    spelling = rng.choice((name, *VARIABLES[name].aliases))
    return rng.choice([spelling, spelling.lower(), spelling.upper()])


def valid_request(rng: random.Random) -> dict[str, Any]:
    """A valid request of the common kind, in either form."""
    names = rng.sample(SERIES_NAMES, rng.randint(1, 14))
    spellings = [_spelling(rng, n) for n in names]
    values = {key: _variable(rng, n) for key, n in zip(spellings, names, strict=True)}
    if all(v is None for v in values.values()):
        values[spellings[0]] = _value(rng, names[0])
    demographics: dict[str, Any] = {}
    if rng.random() < 0.8:
        demographics[rng.choice(["Age", "age", "age_years"])] = _value(rng, "Age")
    if rng.random() < 0.8:
        demographics[rng.choice(["Gender", "sex"])] = rng.choice(
            [0, 1, 0.0, 1.0, "female", "MALE", " f ", "m"]
        )
    if rng.random() < 0.3:
        demographics["ICULOS"] = _value(rng, "ICULOS")
    if rng.random() < 0.2:
        demographics["HospAdmTime"] = _value(rng, "HospAdmTime")
    meta: dict[str, Any] = {}
    if rng.random() < 0.5:
        meta["patient_id"] = rng.choice(["P-1", 42, "x" * 128, None])
    if rng.random() < 0.3:
        meta["notes"] = rng.choice(["Febrile, new confusion.", None, ""])
    if rng.random() < 0.1:
        meta["patient_history"] = None  # a history is read by the general parser
    if rng.random() < 0.1:
        meta["units"] = None
    if rng.random() < 0.1:
        meta["Unit1"] = 1  # a challenge column that is accepted and ignored
    if rng.random() < 0.5:
        return {**meta, **values, **demographics}
    vitals = dict(values)
    structured: dict[str, Any] = {**meta, "vitals": vitals}
    if rng.random() < 0.3:
        moved = [k for k in vitals if rng.random() < 0.4]
        structured["labs"] = {k: vitals.pop(k) for k in moved}
    target = vitals if rng.random() < 0.5 else structured
    target.update(demographics)
    return dict(rng.sample(list(structured.items()), len(structured)))


def _a_variable_key(raw: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    for holder in (raw, raw.get("vitals"), raw.get("labs")):
        if isinstance(holder, dict):
            for key in holder:
                if key not in ("vitals", "labs", "patient_id", "notes", "patient_history"):
                    return holder, key
    return None


BAD_VALUES: tuple[Any, ...] = (
    -1,
    1e9,
    10**400,
    math.nan,
    math.inf,
    -math.inf,
    True,
    "fast",
    "",
    [],
    [80, None],
    [80, "x"],
    [80, math.nan],
    [80, True],
    [1e9, 80],
    [{"val": 80, "ts": "2026-02-07T18:30"}],
    [80, {"val": 80, "ts": "2026-02-07T18:30"}],
    {"val": 80},
    [0.5] * 2001,
)


def broken_request(rng: random.Random) -> dict[str, Any]:
    """A common request broken (or made uncommon) in one way."""
    raw = valid_request(rng)
    found = _a_variable_key(raw)
    kind = rng.randrange(9)
    if kind <= 2 and found is not None:
        holder, key = found
        holder[key] = rng.choice(BAD_VALUES)
    elif kind == 3:
        raw["HR"] = 80
        raw["heart_rate"] = 81
    elif kind == 4:
        raw[rng.choice(["Mystery", "hr2"])] = 1
    elif kind == 5:
        raw["units"] = rng.choice([{"Temp": "degF"}, {"Temp": "kelvin"}, "F", {"HR": 3}])
        raw.setdefault("Temp", 100.4)
    elif kind == 6:
        raw[rng.choice(["Gender", "Age", "ICULOS"])] = rng.choice(
            [2, -1, "other", [60], True, None, 1e6, math.nan]
        )
    elif kind == 7 and rng.random() < 0.3:
        raw["patient_history"] = rng.choice(
            [{"conditions": ["COPD", " "], "medications": ["metformin"]}, {}, {"x": []}]
        )
    elif kind == 7:
        raw[rng.choice(["patient_id", "notes", "patient_history", "vitals", "labs"])] = rng.choice(
            [123.5, "", "n" * 20_001, ["x"], {"conditions": "COPD"}, 7, 10**200]
        )
    else:
        raw["GCS"] = rng.choice([14.5, [15, 14.2], 2, 16, "15"])
    return raw
