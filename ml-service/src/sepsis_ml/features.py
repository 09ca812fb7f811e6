"""Model features: what one scored hour looks like to the model, the same code for all callers.

A scored hour is described by a `PatientWindow`:

- the vital signs of the last `WINDOW_HOURS` hours, hour by hour (NaN where nothing was
  measured; the last row is the scored hour);
- for each laboratory value, its newest result of the last `LAB_MAX_AGE_HOURS` hours and how
  many hours old that result is. Wards and ICUs draw labs every 12-24 hours, so a lab of this
  morning still describes the patient; the model knows its age and weighs it;
- age, sex and the optional ICU length of stay.

`features_from_arrays` turns stacked windows into the model's feature matrix; it is the one
feature function. The service builds a window from a request (`window_from_patient`);
training and evaluation build the window of every hour of every stay (`features_for_stays`),
optionally with inputs withheld the way real requests lack them (`Withheld`), so a request
carrying the rows of a stay yields exactly the features the model was trained on for that
hour (tested on real stays). Nothing here looks at the whole stay or at the record's length.
`feature_spec()` describes all of it for features.json, so a model is refused when the code
computing its features has changed.

Only numpy is needed, so the service image does not carry the training stack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from sepsis_shared.patient import NormalizedPatient

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

WINDOW_HOURS: Final = 8
"""Hourly rows of vital signs per window, the scored hour included."""

LAB_MAX_AGE_HOURS: Final = 24.0
"""A lab result counts for the model while it is at most this many hours old."""

RECENT_LAB_HOURS: Final = 8
"""Labs of the newest this-many hours are what the `recent_labs` withholding removes."""

VITALS: Final = ("HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp")
"""Bedside vital signs: summarised over the window (last, mean, min, max, std, slope)."""

LABS: Final = (
    "BaseExcess",
    "HCO3",
    "FiO2",
    "pH",
    "PaCO2",
    "SaO2",
    "AST",
    "BUN",
    "Alkalinephos",
    "Calcium",
    "Chloride",
    "Creatinine",
    "Bilirubin_direct",
    "Glucose",
    "Lactate",
    "Magnesium",
    "Phosphate",
    "Potassium",
    "Bilirubin_total",
    "TroponinI",
    "Hct",
    "Hgb",
    "PTT",
    "WBC",
    "Fibrinogen",
    "Platelets",
)
"""Laboratory values (FiO2 among them, as in the challenge data): the newest result of the
last LAB_MAX_AGE_HOURS and its age."""

INPUT_VARIABLES: Final[tuple[str, ...]] = VITALS + LABS
"""PhysioNet 2019 names the model reads, in column order. EtCO2 is left out: it is never
measured in the training data, so the model could learn nothing from it."""

VITAL_STATS: Final = ("last", "mean", "min", "max", "std", "slope")

DERIVED: Final = ("ShockIndex", "PulsePressure", "BUN_Creatinine", "SpO2_FiO2")
"""Indices from the latest values: HR/SBP, SBP-DBP, BUN/creatinine, SpO2/FiO2."""

DEMOGRAPHICS: Final = ("Age", "Gender", "ICULOS")

FEATURE_NAMES: Final[tuple[str, ...]] = (
    tuple(f"{v}_{s}" for v in VITALS for s in VITAL_STATS)
    + tuple(f"{v}_last" for v in LABS)
    + tuple(f"{v}_age" for v in LABS)
    + DERIVED
    + DEMOGRAPHICS
)

_VITAL_COL: Final = {name: i for i, name in enumerate(VITALS)}
_LAB_COL: Final = {name: i for i, name in enumerate(LABS)}
_N_VITALS: Final = len(VITALS)
_N_LABS: Final = len(LABS)
_BP: Final = [_VITAL_COL["SBP"], _VITAL_COL["MAP"], _VITAL_COL["DBP"]]
_FIO2: Final = _LAB_COL["FiO2"]

# FiO2 is a fraction; room air is the floor, which also keeps the ratio finite.
_FIO2_MIN: Final = 0.21
_FIO2_MAX: Final = 1.0


def feature_spec() -> dict[str, object]:
    """What a trained model depends on: windows, inputs and feature order (JSON-ready;
    stored in features.json)."""
    return {
        "window_hours": WINDOW_HOURS,
        "lab_max_age_hours": LAB_MAX_AGE_HOURS,
        "vitals": list(VITALS),
        "labs": list(LABS),
        "feature_names": list(FEATURE_NAMES),
    }


@dataclass(frozen=True)
class PatientWindow:
    """One scored hour as the model sees it; NaN = not measured or unknown."""

    vitals: FloatArray
    """(WINDOW_HOURS, len(VITALS)); the last row is the scored hour."""
    labs: FloatArray
    """(len(LABS),): the newest result of each lab within LAB_MAX_AGE_HOURS."""
    lab_ages: FloatArray
    """(len(LABS),): hours from that result to the scored hour."""
    age: float
    gender: float
    iculos: float


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def window_from_patient(p: NormalizedPatient) -> PatientWindow:
    """The window of a patient's scored hour.

    Vitals: row WINDOW_HOURS-1 holds hours_ago in [0, 1), the row before it [1, 2), and so on;
    older observations are dropped; of several in one hour the newest wins. Labs: the newest
    observation at most LAB_MAX_AGE_HOURS old, with its hours_ago as its age.
    """
    vitals = [[math.nan] * _N_VITALS for _ in range(WINDOW_HOURS)]
    labs = [math.nan] * _N_LABS
    ages = [math.nan] * _N_LABS
    for name, observations in p.series.items():
        col = _VITAL_COL.get(name)
        if col is not None:
            taken = [math.inf] * WINDOW_HOURS
            for value, ago in observations:
                bucket = math.floor(ago)
                if 0 <= bucket < WINDOW_HOURS:
                    row = WINDOW_HOURS - 1 - bucket
                    if ago < taken[row]:
                        taken[row] = ago
                        vitals[row][col] = value
            continue
        col = _LAB_COL.get(name)
        if col is not None:
            # oldest first: the first from the end that is young enough is the newest
            for value, ago in reversed(observations):
                if 0.0 <= ago <= LAB_MAX_AGE_HOURS:
                    labs[col], ages[col] = value, ago
                    break
    return PatientWindow(
        vitals=np.array(vitals, dtype=np.float64),
        labs=np.array(labs, dtype=np.float64),
        lab_ages=np.array(ages, dtype=np.float64),
        age=_or_nan(p.age),
        gender=_or_nan(p.gender),
        iculos=_or_nan(p.iculos),
    )


def _last_observed(x: FloatArray, observed: BoolArray) -> FloatArray:
    """Latest observed value along the hours (axis 0), carried forward within the window."""
    steps = np.arange(x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1))
    idx = np.where(observed, steps, -1).max(axis=0)
    picked = np.take_along_axis(x, np.maximum(idx, 0)[None], axis=0)[0]
    return np.where(idx >= 0, picked, np.nan)


def _vital_stats(v: FloatArray) -> FloatArray:
    """(n, W, k) vitals -> (n, k, len(VITAL_STATS)) summary statistics.

    Worked out on a copy laid out (W, k, n), so that each sum over the hours adds whole
    contiguous planes hour by hour.
    """
    x = np.ascontiguousarray(np.moveaxis(v, 0, -1))
    observed = ~np.isnan(x)
    count = observed.sum(axis=0).astype(np.float64)
    has_any = count > 0
    has_two = count > 1
    safe_count = np.maximum(count, 1.0)
    zeroed = np.where(observed, x, 0.0)
    mean = zeroed.sum(axis=0) / safe_count
    vmin = np.where(observed, x, np.inf).min(axis=0)
    vmax = np.where(observed, x, -np.inf).max(axis=0)
    dev = np.where(observed, x - mean[None, :, :], 0.0)
    std = np.sqrt((dev * dev).sum(axis=0) / safe_count)
    # Least-squares slope per hour over the observed points: independent of how many hours
    # of history the caller sent, unlike last-minus-first.
    t = np.arange(x.shape[0], dtype=np.float64)[:, None, None]
    t_mean = np.where(observed, t, 0.0).sum(axis=0) / safe_count
    t_dev = np.where(observed, t - t_mean[None, :, :], 0.0)
    sxx = (t_dev * t_dev).sum(axis=0)
    sxy = (t_dev * dev).sum(axis=0)
    slope = sxy / np.where(sxx > 0, sxx, 1.0)
    last = _last_observed(x, observed)
    nan = np.nan
    stats = np.stack(
        [
            last,
            np.where(has_any, mean, nan),
            np.where(has_any, vmin, nan),
            np.where(has_any, vmax, nan),
            np.where(has_two, std, nan),
            np.where(has_two, slope, nan),
        ],
        axis=2,
    )
    return np.ascontiguousarray(stats.transpose(1, 0, 2))


def features_from_arrays(
    vitals: FloatArray,
    labs: FloatArray,
    lab_ages: FloatArray,
    age: FloatArray,
    gender: FloatArray,
    iculos: FloatArray,
) -> npt.NDArray[np.float32]:
    """Features of stacked windows: `vitals` (n, WINDOW_HOURS, len(VITALS)), `labs` and
    `lab_ages` (n, len(LABS)), `age`, `gender`, `iculos` (n,); float64, NaN for unknown.
    The one feature function."""
    n = vitals.shape[0]
    if vitals.shape[1:] != (WINDOW_HOURS, _N_VITALS) or labs.shape != (n, _N_LABS):
        raise ValueError(
            f"expected vitals (n, {WINDOW_HOURS}, {_N_VITALS}) and labs (n, {_N_LABS}), got "
            f"{vitals.shape} and {labs.shape}"
        )
    stats = _vital_stats(vitals)
    last = stats[:, :, 0]
    hr, sbp, dbp, spo2 = (last[:, _VITAL_COL[k]] for k in ("HR", "SBP", "DBP", "O2Sat"))
    bun, creatinine = labs[:, _LAB_COL["BUN"]], labs[:, _LAB_COL["Creatinine"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        shock_index = np.where(sbp > 0, hr / sbp, np.nan)
        bun_creat = np.where(creatinine > 0, bun / creatinine, np.nan)
    spo2_fio2 = spo2 / np.clip(labs[:, _FIO2], _FIO2_MIN, _FIO2_MAX)
    derived = np.stack([shock_index, sbp - dbp, bun_creat, spo2_fio2], axis=1)
    demographics = np.stack([age, gender, iculos], axis=1)
    out = np.concatenate([stats.reshape(n, -1), labs, lab_ages, derived, demographics], axis=1)
    return out.astype(np.float32)


def features_for_windows(windows: Sequence[PatientWindow]) -> npt.NDArray[np.float32]:
    """Feature matrix (n, len(FEATURE_NAMES)) float32 for a batch of windows."""
    if not windows:
        return np.empty((0, len(FEATURE_NAMES)), dtype=np.float32)
    return features_from_arrays(
        np.stack([w.vitals for w in windows]),
        np.stack([w.labs for w in windows]),
        np.stack([w.lab_ages for w in windows]),
        np.array([w.age for w in windows], dtype=np.float64),
        np.array([w.gender for w in windows], dtype=np.float64),
        np.array([w.iculos for w in windows], dtype=np.float64),
    )


# --------------------------------------------------------------------------------------------
# Training and evaluation: the window of every hour of every stay


@dataclass(frozen=True)
class Withheld:
    """What to leave out of each scored hour's inputs, as if the request had not carried it
    (per-row arrays; None = nothing of that kind). Training varies its rows this way so that
    the model degrades gracefully when a whole family is missing; evaluation stresses the
    validation hours the same way."""

    recent_labs: BoolArray | None = None
    """Labs of the newest RECENT_LAB_HOURS left out: an older result (up to
    LAB_MAX_AGE_HOURS) stands in where there is one."""
    labs: BoolArray | None = None
    """Every lab left out."""
    bp: BoolArray | None = None
    """SBP, MAP and DBP left out."""
    fio2: BoolArray | None = None
    vital_hours: IntArray | None = None
    """Hours of vitals kept, newest first (WINDOW_HOURS keeps all, 1 a single snapshot)."""

    def take(self, rows: IntArray) -> Withheld:
        """The same for a subset of the rows."""
        picked: dict[str, Any] = {}
        for f in fields(self):
            a = getattr(self, f.name)
            picked[f.name] = None if a is None else a[rows]
        return Withheld(**picked)


def stay_starts(stay_ids: npt.ArrayLike) -> IntArray:
    """Index of the first row of each row's stay; rows of one stay must be contiguous."""
    ids = np.asarray(stay_ids)
    n = ids.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new_stay = np.ones(n, dtype=bool)
    new_stay[1:] = ids[1:] != ids[:-1]
    first = np.flatnonzero(new_stay).astype(np.int64)
    starts: IntArray = first[np.cumsum(new_stay) - 1]
    return starts


def vital_windows(values: FloatArray, starts: IntArray, rows: IntArray) -> FloatArray:
    """Vital windows (len(rows), WINDOW_HOURS, len(VITALS)) of the given rows of stacked
    stays (`values`: the VITALS columns of every row); hours before the stay began are NaN."""
    offsets = np.arange(-(WINDOW_HOURS - 1), 1)
    idx = rows[:, None] + offsets[None, :]
    before_stay = idx < starts[rows][:, None]
    windows: FloatArray = values[np.maximum(idx, 0)]
    windows[before_stay] = np.nan
    return windows


def last_result_rows(values: FloatArray, starts: IntArray) -> IntArray:
    """For each row and column of stacked stays, the row of the newest observed value at or
    before it within the same stay (-1: none yet)."""
    here = np.where(~np.isnan(values), np.arange(values.shape[0])[:, None], -1)
    last = np.maximum.accumulate(here, axis=0)
    last[last < starts[:, None]] = -1
    return last


def lab_results(
    values: FloatArray,
    last_rows: IntArray,
    starts: IntArray,
    rows: IntArray,
    *,
    skip_hours: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """(labs, ages) of the given rows: the newest result of each lab column at most
    LAB_MAX_AGE_HOURS old and at least `skip_hours` old, as `window_from_patient` takes it.
    `values`: the LABS columns of every row; `last_rows`: their `last_result_rows`."""
    source = rows - skip_hours
    in_stay = source >= starts[rows]
    found = last_rows[np.maximum(source, 0)]
    found[~in_stay] = -1
    ages = (rows[:, None] - found).astype(np.float64)
    keep = (found >= 0) & (ages <= LAB_MAX_AGE_HOURS)
    cols = np.arange(values.shape[1])[None, :]
    labs = np.where(keep, values[np.maximum(found, 0), cols], np.nan)
    return labs, np.where(keep, ages, np.nan)


def features_for_stays(
    values: FloatArray,
    stay_ids: npt.ArrayLike,
    *,
    age: FloatArray,
    gender: FloatArray,
    iculos: FloatArray,
    withheld: Withheld | None = None,
    chunk_rows: int = 50_000,
) -> npt.NDArray[np.float32]:
    """Features of every hour of every stay, each from its own window (training/evaluation).

    `values`: (n_rows, len(INPUT_VARIABLES)) float64 hourly rows, stays contiguous and in
    time order; `age`, `gender`, `iculos`: (n_rows,) per row (NaN = unknown). Identical to
    `features_for_windows` on the windows a request for that hour would carry (with what
    `withheld` names left out of it).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(INPUT_VARIABLES):
        raise ValueError(f"values must have shape (n, {len(INPUT_VARIABLES)}), got {values.shape}")
    n = values.shape[0]
    starts = stay_starts(stay_ids)
    vitals, labs = values[:, :_N_VITALS], np.ascontiguousarray(values[:, _N_VITALS:])
    last_rows = last_result_rows(labs, starts)
    age, gender, iculos = (np.asarray(a, dtype=np.float64) for a in (age, gender, iculos))
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    for lo in range(0, n, chunk_rows):
        rows = np.arange(lo, min(lo + chunk_rows, n), dtype=np.int64)
        v = vital_windows(vitals, starts, rows)
        lab, lab_age = lab_results(labs, last_rows, starts, rows)
        if withheld is not None:
            w = withheld.take(rows)
            if w.recent_labs is not None:
                older, older_age = lab_results(
                    labs, last_rows, starts, rows, skip_hours=RECENT_LAB_HOURS
                )
                lab[w.recent_labs] = older[w.recent_labs]
                lab_age[w.recent_labs] = older_age[w.recent_labs]
            if w.labs is not None:
                lab[w.labs] = np.nan
                lab_age[w.labs] = np.nan
            if w.fio2 is not None:
                lab[w.fio2, _FIO2] = np.nan
                lab_age[w.fio2, _FIO2] = np.nan
            if w.bp is not None:
                picked = v[w.bp]
                picked[:, :, _BP] = np.nan
                v[w.bp] = picked
            if w.vital_hours is not None:
                dropped = np.arange(WINDOW_HOURS)[None, :] < (WINDOW_HOURS - w.vital_hours)[:, None]
                v[dropped] = np.nan
        out[rows] = features_from_arrays(v, lab, lab_age, age[rows], gender[rows], iculos[rows])
    return out
