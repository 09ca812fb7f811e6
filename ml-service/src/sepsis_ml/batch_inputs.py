"""A batch of parsed patients laid out in arrays, for the vectorised batch path.

Most requests arrive as numbers and lists of hourly numbers (`HourlyPatient`): their values go
into one flat array in a single pass, and the model windows, the latest value of every variable
and the look-back trends are then cut out of it with a few numpy operations. Patients sent in
another form (time series, units) arrive as a `NormalizedPatient` and are laid out one by one
by the same functions the single-patient path uses. Either way each row holds exactly what
`window_from_patient`, `NormalizedPatient.latest` and the driver trends give for that patient.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from sepsis_ml.blend import TREND_VARIABLES, window_trend
from sepsis_ml.features import INPUT_VARIABLES, WINDOW_HOURS, window_from_patient
from sepsis_shared.patient import HourlyPatient, NormalizedPatient
from sepsis_shared.scores import SOFA_URINE_WINDOW_H, sofa_urine_points
from sepsis_shared.variables import SERIES_VARIABLES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LATEST_VARIABLES: Final[tuple[str, ...]] = INPUT_VARIABLES + tuple(
    sorted(SERIES_VARIABLES.difference(INPUT_VARIABLES))
)
"""Columns of `BatchInputs.latest`: the model's inputs first (the window columns), then every
other variable a request may carry (bedside inputs, EtCO2)."""
COLUMN: Final = {name: i for i, name in enumerate(LATEST_VARIABLES)}
_N_LATEST: Final = len(LATEST_VARIABLES)
_N_WINDOW: Final = len(INPUT_VARIABLES)
_URINE: Final = "UrineOutput"
_TREND_OF_COLUMN: Final = np.full(_N_LATEST, -1, dtype=np.int64)
"""Each column's place in TREND_VARIABLES, -1 for none."""
_TREND_OF_COLUMN[[COLUMN[name] for name in TREND_VARIABLES]] = np.arange(len(TREND_VARIABLES))
_TREND_OF_COLUMN.setflags(write=False)

Patient = HourlyPatient | NormalizedPatient


@dataclass(frozen=True, slots=True)
class BatchInputs:
    """Row i describes patient i of the batch."""

    windows: FloatArray
    """(n, WINDOW_HOURS, len(INPUT_VARIABLES)): what `window_from_patient` gives, stacked."""
    age: FloatArray
    gender: FloatArray
    iculos: FloatArray
    """(n,) each, NaN when unknown."""
    latest: FloatArray
    """(n, len(LATEST_VARIABLES)): the newest value of each variable, NaN when not sent."""
    urine_points: IntArray
    """(n,) SOFA renal points of the recent urine output, -1 when there is none."""
    trend_change: FloatArray
    trend_span: FloatArray
    """(n, len(TREND_VARIABLES)): `window_trend` of each, NaN when it has none."""


def _hourly_urine(values: Sequence[float]) -> int | None:
    # value i was measured i hours before the scored hour; the score wants them oldest first
    recent = [x for i, x in enumerate(values) if i < SOFA_URINE_WINDOW_H]
    recent.reverse()
    return sofa_urine_points(recent)


def batch_inputs(patients: Sequence[Patient]) -> BatchInputs:
    """The arrays of a batch of parsed patients (see the module docstring)."""
    n = len(patients)
    hourly_rows: list[int] = []
    hourly: list[Mapping[str, tuple[float, ...]]] = []
    others: list[tuple[int, NormalizedPatient]] = []
    urine = np.full(n, -1, dtype=np.int64)
    for i, p in enumerate(patients):
        if isinstance(p, HourlyPatient):
            hourly_rows.append(i)
            hourly.append(p.hourly)
            if _URINE in p.hourly:
                points = _hourly_urine(p.hourly[_URINE])
                urine[i] = -1 if points is None else points
        else:
            others.append((i, p))

    latest = np.full(n * _N_LATEST, np.nan)
    windows = np.full((n, WINDOW_HOURS, _N_WINDOW), np.nan)
    trend_change = np.full((n, len(TREND_VARIABLES)), np.nan)
    trend_span = np.full((n, len(TREND_VARIABLES)), np.nan)
    # one run of values per patient and variable, patient by patient, gathered by iterators
    # straight into arrays (no list of every value in between)
    chain = itertools.chain.from_iterable
    runs = list(chain(h.values() for h in hourly))
    if runs:
        _lay_out_hourly(
            np.fromiter(chain(runs), np.float64),
            np.fromiter(map(len, runs), np.int64, len(runs)),
            np.repeat(np.array(hourly_rows, dtype=np.int64), list(map(len, hourly))),
            np.fromiter(map(COLUMN.__getitem__, chain(hourly)), np.int64, len(runs)),
            latest=latest,
            windows=windows,
            trend_change=trend_change,
            trend_span=trend_span,
        )
    latest_rows = latest.reshape(n, _N_LATEST)
    for i, p in others:
        _lay_out_one(p, i, latest_rows, windows, trend_change, trend_span, urine)
    return BatchInputs(
        windows=windows,
        age=_known([p.age for p in patients]),
        gender=_known([p.gender for p in patients]),
        iculos=_known([p.iculos for p in patients]),
        latest=latest_rows,
        urine_points=urine,
        trend_change=trend_change,
        trend_span=trend_span,
    )


def _known(values: list[float | None] | list[int | None]) -> FloatArray:
    """NaN for None."""
    return np.array([math.nan if x is None else x for x in values], dtype=np.float64)


def _lay_out_hourly(
    values: FloatArray,
    lengths: IntArray,
    run_patient: IntArray,
    run_column: IntArray,
    *,
    latest: FloatArray,
    windows: FloatArray,
    trend_change: FloatArray,
    trend_span: FloatArray,
) -> None:
    """Runs of hourly values (each newest first, one run per patient and variable: its row
    and its column of `latest`) into the flat `latest` (n * _N_LATEST), the windows and the
    trends."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    # newest first: a run's first value is its latest
    latest[run_patient * _N_LATEST + run_column] = values[starts]

    # value j of a run is j hours old: it goes to row WINDOW_HOURS-1-j while j < WINDOW_HOURS
    hours_ago = np.arange(len(values)) - np.repeat(starts, lengths)
    column = np.repeat(run_column, lengths)
    keep = (hours_ago < WINDOW_HOURS) & (column < _N_WINDOW)
    cell = np.repeat(run_patient, lengths) * WINDOW_HOURS + (WINDOW_HOURS - 1) - hours_ago
    cell *= _N_WINDOW
    cell += column
    windows.reshape(-1)[cell[keep]] = values[keep]

    # trends: from the oldest value inside the window to the newest, for runs of two or more
    trend = _TREND_OF_COLUMN[run_column]
    runs = np.flatnonzero((trend >= 0) & (lengths >= 2))
    oldest = np.minimum(lengths[runs], WINDOW_HOURS) - 1
    rows, k = run_patient[runs], trend[runs]
    trend_change[rows, k] = values[starts[runs]] - values[starts[runs] + oldest]
    trend_span[rows, k] = oldest.astype(np.float64)


def _lay_out_one(
    p: NormalizedPatient,
    i: int,
    latest: FloatArray,
    windows: FloatArray,
    trend_change: FloatArray,
    trend_span: FloatArray,
    urine: IntArray,
) -> None:
    """One patient of any form, by the single-patient functions themselves."""
    windows[i] = window_from_patient(p).values
    for name, observations in p.series.items():
        if observations:
            latest[i, COLUMN[name]] = observations[-1].value
    for k, name in enumerate(TREND_VARIABLES):
        trend = window_trend(p.observations(name))
        if trend is not None:
            trend_change[i, k], trend_span[i, k] = trend
    points = sofa_urine_points(
        [o.value for o in p.observations(_URINE) if o.hours_ago < SOFA_URINE_WINDOW_H]
    )
    urine[i] = -1 if points is None else points
