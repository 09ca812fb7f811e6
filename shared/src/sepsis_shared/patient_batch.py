"""A batch body of common patients read straight from its JSON bytes.

A `{"patients": [...]}` body whose patients are all of the common kind (numbers and lists of
numbers under names the parser knows, no units, no time series, no history) is decoded by
msgspec into dicts whose lists already are tuples of floats, with every key checked against
the accepted spellings in the same pass. What is left is the per-patient bookkeeping of
`read_common` and one vectorised range check of every list value in the batch.

`read_common_batch` only ever answers for a patient what `read_common` (and so the general
parser) answers; anything it cannot vouch for (a body msgspec refuses, an unknown spelling, a
list of time points, a value out of range, ...) it leaves to them: the whole body when the
body is not of this kind, one patient when only that patient is not.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

import msgspec

from sepsis_shared.patient_common import BY_SPELLING, SERIES_KIND, Entry, read_scalar
from sepsis_shared.patient_types import (
    GENDER_WORDS,
    MAX_INT_PATIENT_ID,
    MAX_NOTES_CHARS,
    MAX_PATIENT_ID_CHARS,
    MAX_POINTS_PER_VARIABLE,
    META_KEYS,
    HourlyPatient,
)
from sepsis_shared.variables import IGNORED_NAMES, SERIES_VARIABLES

__all__ = ["read_common_batch"]

_META: Final = {
    "patient_id": "patient_id",
    "patientid": "patient_id",
    "notes": "notes",
    "vitals": "vitals",
    "labs": "labs",
}
"""The request keys (as spelled here) this path reads besides variables; `patient_history`
and `units` are the general parser's."""
_IGNORED: Final = tuple(
    sorted({s for name in IGNORED_NAMES for s in (name, name.capitalize(), name.upper())})
)


def _literal(values: Sequence[str]) -> Any:
    return Literal.__getitem__(tuple(values))


def _spellings() -> dict[str, Entry]:
    """The spellings read here: those `read_common` finds as they are, and their upper case
    (which it finds through their lower case, unless that is a request key)."""
    table = dict(BY_SPELLING)
    for spelling in BY_SPELLING:
        upper = spelling.upper()
        if upper not in table and upper.lower() not in META_KEYS:
            table[upper] = BY_SPELLING[upper.lower()]
    return table


_SPELLINGS: Final = _spellings()
_NestedKey: Any = _literal(sorted(_SPELLINGS) + list(_IGNORED))
_TopKey: Any = _literal(sorted(_SPELLINGS) + list(_IGNORED) + sorted(_META))
_Scalar: Any = None | bool | int | float | str
_NestedValue: Any = _Scalar | tuple[float, ...]
_TopValue: Any = _NestedValue | dict[_NestedKey, _NestedValue]

_DECODER: Final = msgspec.json.Decoder(dict[Literal["patients"], list[dict[_TopKey, _TopValue]]])


def _series_struct() -> Any:
    """A record of every series variable under its own name, each value checked while it is
    decoded as `read_common` checks it: a number or a list of 1..MAX_POINTS_PER_VARIABLE
    numbers, each within the variable's range (whole where it must be), or null."""
    fields: list[tuple[str, Any, Any]] = []
    for name in sorted(SERIES_VARIABLES):
        entry = BY_SPELLING[name]
        whole = 1 if entry.integer else None
        value: Any = Annotated[float, msgspec.Meta(ge=entry.low, le=entry.high, multiple_of=whole)]
        run: Any = Annotated[
            tuple[value, ...], msgspec.Meta(min_length=1, max_length=MAX_POINTS_PER_VARIABLE)
        ]
        # unset (absent) and null (sent as "not measured") stay apart: a null still counts
        # when a variable is given twice
        fields.append((name, value | run | None | msgspec.UnsetType, msgspec.UNSET))
    return msgspec.defstruct("Series", fields, forbid_unknown_fields=True)


def _usual_struct(series: Any) -> Any:
    """A patient in the usual structured form: series under their own names in `vitals`
    (and `labs`), the demographics at the top, each key spelled as documented."""
    number: Any = int | float | None
    fields: list[tuple[str, Any, Any]] = [
        ("patient_id", str | int | None, None),
        ("vitals", series | None, None),
        ("labs", series | None, None),
        ("notes", str | None, None),
        ("Age", number, None),
        ("Gender", str | int | float | None, None),
        ("ICULOS", number, None),
        ("HospAdmTime", number, None),
    ]
    return msgspec.defstruct("UsualPatient", fields, forbid_unknown_fields=True)


_Series: Any = _series_struct()
_Usual: Any = _usual_struct(_Series)
_USUAL_DECODER: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(
    msgspec.defstruct("UsualBatch", [("patients", list[_Usual])], forbid_unknown_fields=True)
)
_sent: Final = msgspec.to_builtins
"""The fields of a decoded `Series` that were in the request (unset ones are left out)."""
_AGE: Final = BY_SPELLING["Age"]
_ICULOS: Final = BY_SPELLING["ICULOS"]
_HOSP_ADM_TIME: Final = BY_SPELLING["HospAdmTime"]

_CANONICAL_SERIES: Final = frozenset(SERIES_VARIABLES)
_LIST_OR_FLOAT: Final = frozenset({tuple, float})


def read_common_batch(body: bytes, *, max_items: int) -> list[HourlyPatient | None] | None:
    """Each patient of the batch body as `read_common` reads it, or None for a patient it
    leaves to the general path; None for the whole body when the body is not a batch of
    1..`max_items` patients of the kind this path reads (the general path then says why)."""
    out: list[HourlyPatient | None]
    try:
        usual = _USUAL_DECODER.decode(body).patients
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        # some key is not of the usual form (or the body is not JSON): try the wider form
        try:
            items = _DECODER.decode(body).get("patients")
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            # not a body of this kind: the general path reads it, or says why
            return None
        if not items or len(items) > max_items:
            return None
        out = [_read(raw) for raw in items]
        _check_lists(out)
        return out
    if not usual or len(usual) > max_items:
        return None
    # every value was checked while decoding
    return [_read_usual(p) for p in usual]


def _read_usual(p: Any) -> HourlyPatient | None:
    """One decoded patient of the usual form (values already checked), as `read_common`
    reads it."""
    # the variables sent (null included); a list comes as a tuple of floats
    series: dict[str, Any] = {} if p.vitals is None else _sent(p.vitals)
    if p.labs is not None:
        labs = _sent(p.labs)
        if not series.keys().isdisjoint(labs):
            return None  # a variable given twice: the general path says so
        series.update(labs)
    # a number is one hour's value
    hourly = {k: v if type(v) is tuple else (v,) for k, v in series.items() if v is not None}
    if not hourly:
        return None
    patient_id = p.patient_id
    if patient_id is not None:
        if isinstance(patient_id, str):
            if not 0 < len(patient_id) <= MAX_PATIENT_ID_CHARS:
                return None
        elif abs(patient_id) < MAX_INT_PATIENT_ID:
            patient_id = str(patient_id)
        else:
            return None
    notes = p.notes
    if notes is not None and len(notes) > MAX_NOTES_CHARS:
        return None
    age = iculos = hosp_adm_time = gender = None
    if p.Age is not None and (age := read_scalar(_AGE, p.Age)) is None:
        return None
    if p.ICULOS is not None and (iculos := read_scalar(_ICULOS, p.ICULOS)) is None:
        return None
    if p.HospAdmTime is not None and (
        (hosp_adm_time := read_scalar(_HOSP_ADM_TIME, p.HospAdmTime)) is None
    ):
        return None
    if p.Gender is not None and (gender := _gender(p.Gender)) is None:
        return None
    return HourlyPatient(patient_id, hourly, age, gender, iculos, hosp_adm_time, notes, None)


def _gender(value: object) -> int | None:
    """The 0/1 code of a Gender value, as `read_common` reads it; None when it is not one."""
    if type(value) is str:
        return GENDER_WORDS.get(value.strip().lower())
    if (type(value) is int or type(value) is float) and value in (0, 1):
        return int(value)
    return None


def _read(raw: dict[str, Any]) -> HourlyPatient | None:
    """One decoded patient, as `read_common` reads it, with each list left to `_check_lists`
    (the lists arrive as tuples of floats)."""
    hourly: dict[str, tuple[float, ...]] = {}
    seen: set[str] = set()
    scalars: dict[str, float] = {}
    patient_id: str | None = None
    notes: str | None = None
    for key, value in raw.items():
        entry = _SPELLINGS.get(key)
        if entry is None:
            meta = _META.get(key)
            if meta is None:  # an ignored challenge column
                continue
            if value is None:
                continue
            if meta == "vitals" or meta == "labs":
                if type(value) is not dict:
                    return None
                if (
                    _CANONICAL_SERIES.issuperset(value)
                    and _LIST_OR_FLOAT.issuperset(map(type, value.values()))
                    and seen.isdisjoint(value)
                ):
                    # the usual content: series under their own names, as lists or floats
                    # (a float is range-checked with the lists)
                    seen.update(value)
                    for k, v in value.items():
                        hourly[k] = v if type(v) is tuple else (v,)
                    continue
                for k, v in value.items():
                    e = _SPELLINGS.get(k)
                    if e is not None and not _put(e, v, hourly, scalars, seen):
                        return None
            elif meta == "patient_id":
                if type(value) is str and 0 < len(value) <= MAX_PATIENT_ID_CHARS:
                    patient_id = value
                elif type(value) is int and abs(value) < MAX_INT_PATIENT_ID:
                    patient_id = str(value)
                else:
                    return None
            else:
                if type(value) is not str or len(value) > MAX_NOTES_CHARS:
                    return None
                notes = value
        elif not _put(entry, value, hourly, scalars, seen):
            return None
    if not hourly:
        return None
    gender = scalars.get("Gender")
    return HourlyPatient(
        patient_id=patient_id,
        hourly=hourly,
        age=scalars.get("Age"),
        gender=None if gender is None else int(gender),
        iculos=scalars.get("ICULOS"),
        hosp_adm_time=scalars.get("HospAdmTime"),
        notes=notes,
        history=None,
    )


def _put(
    entry: Entry,
    value: object,
    hourly: dict[str, tuple[float, ...]],
    scalars: dict[str, float],
    seen: set[str],
) -> bool:
    name = entry.name
    if name in seen:
        return False
    seen.add(name)
    if value is None:
        return True
    if entry.kind == SERIES_KIND:
        if type(value) is tuple:
            hourly[name] = value
            return True
        x = read_scalar(entry, value)
        if x is None:
            return False
        hourly[name] = (x,)
        return True
    if name == "Gender":
        code = _gender(value)
        if code is None:
            return False
        scalars[name] = float(code)
        return True
    x = read_scalar(entry, value)
    if x is None:
        return False
    scalars[name] = x
    return True


def _check_lists(patients: list[HourlyPatient | None]) -> None:
    """Every hourly value of the batch against its variable's range (NaN fails), whole where it
    must be, every list 1..MAX_POINTS_PER_VARIABLE long; a patient with a value or list that
    fails is set to None. One pass per variable over all its values."""
    kept = [(i, p.hourly) for i, p in enumerate(patients) if p is not None]
    for name in set().union(*(h for _, h in kept)):
        runs = [h[name] for _, h in kept if name in h]
        if _runs_pass(BY_SPELLING[name], runs):
            continue
        # some list fails: find whose, list by list
        for i, h in kept:
            if name in h and not _runs_pass(BY_SPELLING[name], [h[name]]):
                patients[i] = None


def _runs_pass(entry: Entry, runs: list[tuple[float, ...]]) -> bool:
    flat = list(itertools.chain.from_iterable(runs))
    if () in runs or (
        len(flat) > MAX_POINTS_PER_VARIABLE and max(map(len, runs)) > MAX_POINTS_PER_VARIABLE
    ):
        return False
    # The decoder gives finite floats only (it refuses NaN, Infinity and numbers beyond a
    # float's range), so min and max see every value.
    return (
        entry.low <= min(flat)
        and max(flat) <= entry.high
        and (not entry.integer or all(x.is_integer() for x in flat))
    )
