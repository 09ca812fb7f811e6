"""A batch body of common patients read straight from its JSON bytes.

A `{"patients": [...]}` body whose patients are of the common kind (numbers and lists of
numbers, no units, no time series, no history) is decoded by msgspec, with its lists already
as tuples of floats:

- in the usual structured form (series under their own names in `vitals` and `labs`, the
  demographics at the top), into a typed record per patient whose every series value is
  checked while it is decoded, so that only a little bookkeeping is left per patient;
- else into plain dicts, which `read_common` reads with its lists checked per variable across
  the whole batch (`check_deferred`), as for a decoded body.

`read_common_batch` only ever answers for a patient what `read_common` (and so the general
parser) answers; anything it cannot vouch for (a body msgspec refuses, a list of time points,
a value out of range, ...) it leaves to them: the whole body when the body is not of this
kind, one patient when only that patient is not.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from sepsis_shared.patient_common import (
    BY_SPELLING,
    Deferred,
    check_deferred,
    read_common,
    read_gender,
    read_patient_id,
    read_scalar,
)
from sepsis_shared.patient_types import (
    MAX_NOTES_CHARS,
    MAX_POINTS_PER_VARIABLE,
    HourlyPatient,
)
from sepsis_shared.variables import SERIES_VARIABLES

__all__ = ["read_common_batch"]

_Value: Any = None | bool | int | float | str | tuple[float, ...]
_DECODER: Final = msgspec.json.Decoder(
    dict[Literal["patients"], list[dict[str, _Value | dict[str, _Value]]]]
)
"""The wider form: any key, each value a number, word, flag, list of numbers or an object of
those (`vitals`, `labs`)."""


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
        deferred: Deferred = {}
        out = [read_common(raw, deferred, i) for i, raw in enumerate(items)]
        for i in check_deferred(deferred):
            out[i] = None
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
    patient_id = None
    if p.patient_id is not None and (patient_id := read_patient_id(p.patient_id)) is None:
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
    if p.Gender is not None and (gender := read_gender(p.Gender)) is None:
        return None
    return HourlyPatient(patient_id, hourly, age, gender, iculos, hosp_adm_time, notes, None)
