"""The patient parser's one-pass path for the common request: numbers and lists of numbers.

Most requests carry numbers and lists of hourly numbers only, no units, no time series, no
history, nothing wrong. `read_common` reads such a request in one pass into an `HourlyPatient`
and returns None for anything else, which then goes through the general parser
(`sepsis_shared.patient`): that one reads every form and reports every error, so results and
errors are always the general parser's, the common case just gets there sooner. For a batch,
the lists can be left to `check_deferred`, which checks them variable by variable across all
patients at once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from sepsis_shared.patient_types import (
    GENDER_WORDS,
    MAX_INT_PATIENT_ID,
    MAX_NOTES_CHARS,
    MAX_PATIENT_ID_CHARS,
    MAX_POINTS_PER_VARIABLE,
    META_KEYS,
    HourlyPatient,
)
from sepsis_shared.variables import (
    BINARY_VARIABLES,
    CONSCIOUSNESS_CODES,
    IGNORED_NAMES,
    SERIES_VARIABLES,
    VARIABLES,
    canonical_name,
)

__all__ = [
    "BY_SPELLING",
    "Deferred",
    "Entry",
    "check_deferred",
    "read_common",
    "read_gender",
    "read_patient_id",
    "read_scalar",
]


_SERIES: Final = 0
_SCALAR: Final = 1
_GENDER: Final = 2


class Entry(NamedTuple):
    """How a variable is read: its canonical name, accepted range and kind."""

    name: str
    low: float
    high: float
    integer: bool
    binary: bool
    kind: int


def _entries() -> dict[str, Entry]:
    """Each spelling `canonical_name` accepts as it is (names, aliases, their lower case),
    by which a variable is found with one lookup."""
    table: dict[str, Entry] = {}
    for spec in VARIABLES.values():
        if spec.name in SERIES_VARIABLES:
            kind = _SERIES
        elif spec.name == "Gender":
            kind = _GENDER
        else:
            kind = _SCALAR
        entry = Entry(
            spec.name, spec.low, spec.high, spec.integer, spec.name in BINARY_VARIABLES, kind
        )
        for key in (spec.name, *spec.aliases):
            for spelling in (key, key.lower()):
                # a spelling that is also a request key (`notes`, `units`, ...) is read as that
                if canonical_name(spelling) == spec.name and spelling.lower() not in META_KEYS:
                    table[spelling] = entry
    return table


_ENTRIES: Final = _entries()
BY_SPELLING: Final[dict[str, Entry]] = _ENTRIES
"""Each spelling taken as it is -> its variable (read-only: shared with `read_common`)."""
_BY_NAME: Final = {entry.name: entry for entry in _ENTRIES.values()}
_NUMBER_TYPES: Final = frozenset({float, int})
_FLOAT_TYPE: Final = frozenset({float})


def read_scalar(entry: Entry, value: object) -> float | None:
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


def read_patient_id(value: object) -> str | None:
    """A valid patient id (a short string, or an integer) as a string, else None."""
    if type(value) is str and 0 < len(value) <= MAX_PATIENT_ID_CHARS:
        return value
    if type(value) is int and abs(value) < MAX_INT_PATIENT_ID:
        return str(value)
    return None


def read_gender(value: object) -> int | None:
    """The 0/1 code of a valid Gender value (a word or 0/1), else None."""
    if type(value) is str:
        return GENDER_WORDS.get(value.strip().lower())
    if (type(value) is int or type(value) is float) and value in (0, 1):
        return int(value)
    return None


def _numbers(entry: Entry, values: Sequence[Any]) -> tuple[float, ...] | None:
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


Deferred = dict[str, list[tuple[int, Sequence[Any], dict[str, Any]]]]
"""Lists left to check, by canonical name: (item index, the list, the dict its floats go
into)."""


def read_common(
    raw: dict[Any, Any], deferred: Deferred | None = None, index: int = 0
) -> HourlyPatient | None:
    """The patient when `raw` is of the common, valid kind; None for anything else.

    With `deferred`, lists of numbers are not checked here: each is added to it (as item
    `index`) and its place in `hourly` is filled by `check_deferred`.
    """
    series: dict[str, Any] = {}
    seen: set[str] = set()
    scalars: dict[str, float] = {}
    patient_id: str | None = None
    notes: str | None = None
    # the top-level keys; the content of `vitals` and `labs` is read where they stand
    pending: list[Any] = [iter(raw.items())]
    top = True
    while pending:
        for key, value in pending[-1]:
            entry = _ENTRIES.get(key)
            if entry is None:
                meta = (META_KEYS.get(key) or META_KEYS.get(key.lower())) if top else None
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
                        continue
                    if meta == "patient_id":
                        patient_id = read_patient_id(value)
                        if patient_id is None:
                            return None
                    elif meta == "notes":
                        if type(value) is not str or len(value) > MAX_NOTES_CHARS:
                            return None
                        notes = value
                    else:  # history and units are for the general parser
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
                # a list (a tuple when the body was decoded by `read_common_batch`)
                if type(value) is list or type(value) is tuple:
                    if deferred is not None and 0 < len(value) <= MAX_POINTS_PER_VARIABLE:
                        found = deferred.get(name)
                        if found is None:
                            deferred[name] = [(index, value, series)]
                        else:
                            found.append((index, value, series))
                        series[name] = None
                        continue
                    xs = _numbers(entry, value)
                    if xs is None:
                        return None
                    series[name] = xs
                    continue
                x = read_scalar(entry, value)
                if x is None:
                    return None
                series[name] = (x,)
            elif kind == _GENDER:
                code = read_gender(value)
                if code is None:
                    return None
                scalars[name] = float(code)
            else:
                x = read_scalar(entry, value)
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
        history=None,
    )


def check_deferred(deferred: Deferred) -> set[int]:
    """Check the deferred lists, variable by variable; fill in their floats. Returns the items
    with a list `_numbers` refuses."""
    failed: set[int] = set()
    chain = itertools.chain.from_iterable
    for name, records in deferred.items():
        entry = _BY_NAME[name]
        # all the values in one list: each check below is then one pass over a list
        flat = list(chain(r[1] for r in records))
        convert: Callable[[Sequence[Any]], tuple[float, ...]] | None = None
        if _FLOAT_TYPE.issuperset(map(type, flat)):
            convert = tuple
        elif _NUMBER_TYPES.issuperset(map(type, flat)):
            convert = _floats
        # every value in range, none NaN (the sum), whole where it must be: then each list
        # passes `_numbers`, which would give these same floats
        if convert is not None and not (
            entry.low <= min(flat)
            and max(flat) <= entry.high
            and math.isfinite(sum(flat))
            and (not entry.integer or all(float(x).is_integer() for x in flat))
        ):
            convert = None
        if convert is None:
            # some list fails: find whose, list by list
            for i, values, series in records:
                xs = _numbers(entry, values)
                if xs is None:
                    failed.add(i)
                else:
                    series[name] = xs
        else:
            for _, values, series in records:
                series[name] = convert(values)
    return failed


def _floats(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(map(float, values))
