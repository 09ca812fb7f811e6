"""Model features: one bounded look-back window per scored hour, the same code for all callers.

A scored hour is described by a `PatientWindow`: the last `WINDOW_HOURS` hourly rows of the
`INPUT_VARIABLES` (NaN where nothing was measured; the last row is the scored hour) plus age,
sex and the optional ICU length of stay. `features_for_windows` turns a batch of windows into
the model's feature matrix. The service builds windows from a request (`window_from_patient`);
training and evaluation build the window of every hour of every stay (`windows_for_stays`,
`features_for_stays`). Both paths end in the one feature function, `features_from_arrays`, so
a request carrying the rows of a window yields exactly the features the model was trained on
for that hour. Nothing here looks beyond the window: no whole-stay statistics, no record
length. `feature_spec()` describes all of it (window, variables, features, score thresholds)
for features.json, so a model is refused when the code computing its features has changed.

Only numpy is needed, so the service image does not carry the training stack.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from sepsis_shared import scores
from sepsis_shared.patient import NormalizedPatient

FloatArray = npt.NDArray[np.float64]

WINDOW_HOURS: Final = 8
"""Hourly rows per window, the scored hour included (the scored hour and the 7 before it)."""

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
"""Laboratory values: drawn a few times a day, so only the latest value in the window is used."""

INPUT_VARIABLES: Final[tuple[str, ...]] = VITALS + LABS
"""PhysioNet 2019 names held by a window, in column order. EtCO2 is left out: it is never
measured in the training data, so the model could learn nothing from it."""

VITAL_STATS: Final = ("last", "mean", "min", "max", "std", "slope")

DERIVED: Final = ("ShockIndex", "PulsePressure", "BUN_Creatinine", "SpO2_FiO2")
"""Indices from the latest values: HR/SBP, SBP-DBP, BUN/creatinine, SpO2/FiO2."""

SCORE_PARTS: Final = ("SIRS_partial", "qSOFA_partial", "NEWS2_partial", "SOFA_partial")
"""Clinical score parts the window's variables allow (missing components count 0)."""

DEMOGRAPHICS: Final = ("Age", "Gender", "ICULOS")

FEATURE_NAMES: Final[tuple[str, ...]] = (
    tuple(f"{v}_{s}" for v in VITALS for s in VITAL_STATS)
    + tuple(f"{v}_last" for v in LABS)
    + DERIVED
    + SCORE_PARTS
    + DEMOGRAPHICS
)

_COL: Final = {name: i for i, name in enumerate(INPUT_VARIABLES)}
_N_VARS: Final = len(INPUT_VARIABLES)
_N_VITALS: Final = len(VITALS)

# --- Clinical score parts. The thresholds are those of sepsis_shared.scores (sources cited
# there: SIRS Bone 1992, qSOFA Singer 2016, NEWS2 RCP 2017, SOFA Vincent 1996, S/F Rice 2007);
# here the scores are partial (only the components the window's variables allow) and computed
# vectorised, a missing component counting 0.


class _Banded(NamedTuple):
    """Points by band: `edges` ascending, one more point than edges; `right` means a value
    equal to an edge falls in the lower band ("<= edge" tables)."""

    edges: tuple[float, ...]
    points: tuple[int, ...]
    right: bool


def _upper_inclusive(bands: Sequence[tuple[float, int]], above: int) -> _Banded:
    """(inclusive upper bound, points) ascending, `above` past the last bound."""
    return _Banded(tuple(float(b) for b, _ in bands), (*(p for _, p in bands), above), right=True)


def _below(bands: Sequence[tuple[float, int]]) -> _Banded:
    """(exclusive upper limit, points) ascending; 0 at or above the last limit."""
    return _Banded(tuple(float(b) for b, _ in bands), (*(p for _, p in bands), 0), right=False)


def _at_least(bands: Sequence[tuple[float, int]]) -> _Banded:
    """(inclusive lower limit, points) descending; 0 below the lowest limit."""
    ascending = sorted(bands)
    return _Banded(
        tuple(float(b) for b, _ in ascending), (0, *(p for _, p in ascending)), right=False
    )


NEWS2_BANDS: Final = {
    "Resp": _upper_inclusive(scores.NEWS2_RESP_BANDS, scores.NEWS2_RESP_ABOVE),
    "O2Sat": _upper_inclusive(scores.NEWS2_SPO2_BANDS, scores.NEWS2_SPO2_ABOVE),
    "SBP": _upper_inclusive(scores.NEWS2_SBP_BANDS, scores.NEWS2_SBP_ABOVE),
    "HR": _upper_inclusive(scores.NEWS2_HR_BANDS, scores.NEWS2_HR_ABOVE),
    "Temp": _upper_inclusive(scores.NEWS2_TEMP_BANDS, scores.NEWS2_TEMP_ABOVE),
}
SOFA_BANDS: Final = {
    "Platelets": _below(scores.SOFA_PLATELET_BANDS),
    "Bilirubin_total": _at_least(scores.SOFA_BILIRUBIN_BANDS),
    "Creatinine": _at_least(scores.SOFA_CREATININE_BANDS),
    "MAP": _below(((scores.SOFA_MAP_MIN, 1),)),
}
SOFA_SF_BANDS: Final = _upper_inclusive(scores.SOFA_SF_BANDS, 0)
ROOM_AIR_FIO2: Final = 0.21

# FiO2 is a fraction; room air is the floor, which also keeps the ratio finite.
_FIO2_MIN: Final = ROOM_AIR_FIO2
_FIO2_MAX: Final = 1.0


def feature_spec() -> dict[str, object]:
    """What a trained model depends on: window, inputs, feature order and the clinical
    thresholds inside the score features (JSON-ready; stored in features.json)."""

    def bands(table: Mapping[str, _Banded]) -> dict[str, object]:
        return {k: {"edges": list(b.edges), "points": list(b.points)} for k, b in table.items()}

    return {
        "window_hours": WINDOW_HOURS,
        "input_variables": list(INPUT_VARIABLES),
        "feature_names": list(FEATURE_NAMES),
        "score_thresholds": {
            "SIRS": {
                "temp_above": scores.SIRS_TEMP_ABOVE,
                "temp_below": scores.SIRS_TEMP_BELOW,
                "hr_above": scores.SIRS_HR_ABOVE,
                "resp_above": scores.SIRS_RESP_ABOVE,
                "paco2_below": scores.SIRS_PACO2_BELOW,
                "wbc_above": scores.SIRS_WBC_ABOVE,
                "wbc_below": scores.SIRS_WBC_BELOW,
            },
            "qSOFA": {"resp_min": scores.QSOFA_RESP_MIN, "sbp_max": scores.QSOFA_SBP_MAX},
            "NEWS2": {
                **bands(NEWS2_BANDS),
                "supplemental_o2": scores.NEWS2_SUPPLEMENTAL_O2,
                "room_air_fio2": ROOM_AIR_FIO2,
            },
            "SOFA": {
                **bands(SOFA_BANDS),
                "SpO2_FiO2": {
                    "edges": list(SOFA_SF_BANDS.edges),
                    "points": list(SOFA_SF_BANDS.points),
                },
                "sf_max_spo2": scores.SOFA_SF_MAX_SPO2,
            },
        },
    }


@dataclass(frozen=True)
class PatientWindow:
    """One scored hour: `values` is (WINDOW_HOURS, len(INPUT_VARIABLES)) float64, NaN = not
    measured, last row = the scored hour; age/gender/iculos are NaN when unknown."""

    values: FloatArray
    age: float
    gender: float
    iculos: float


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def window_from_patient(p: NormalizedPatient) -> PatientWindow:
    """Bucket each observation by `hours_ago` into hourly rows ending at the scored hour.

    Row WINDOW_HOURS-1 holds hours_ago in [0, 1), the row before it [1, 2), and so on;
    observations older than the window are dropped; of several in one hour the newest wins.
    """
    values = np.full((WINDOW_HOURS, _N_VARS), np.nan)
    newest = np.full((WINDOW_HOURS, _N_VARS), np.inf)
    for name, observations in p.series.items():
        col = _COL.get(name)
        if col is None:
            continue
        for obs in observations:
            ago = float(obs.hours_ago)
            value = float(obs.value)
            if not (ago >= 0.0) or not math.isfinite(value):
                continue
            bucket = math.floor(ago)
            if bucket >= WINDOW_HOURS:
                continue
            row = WINDOW_HOURS - 1 - bucket
            if ago < newest[row, col]:
                newest[row, col] = ago
                values[row, col] = value
    return PatientWindow(
        values=values, age=_or_nan(p.age), gender=_or_nan(p.gender), iculos=_or_nan(p.iculos)
    )


def _last_observed(x: FloatArray, observed: npt.NDArray[np.bool_], *, axis: int = 1) -> FloatArray:
    """Latest observed value along the hours' `axis` (carried forward within the window
    only); that axis is dropped."""
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    steps = np.arange(x.shape[axis]).reshape(shape)
    idx = np.expand_dims(np.where(observed, steps, -1).max(axis=axis), axis)
    picked = np.take_along_axis(x, np.maximum(idx, 0), axis=axis)
    return np.squeeze(np.where(idx >= 0, picked, np.nan), axis=axis)


def _band_points(x: FloatArray, band: _Banded) -> FloatArray:
    # searchsorted "left" puts a value equal to an edge in the lower band ("<= edge" tables),
    # "right" in the upper one; NaN sorts past every edge and is zeroed after
    idx = np.searchsorted(band.edges, x, side="left" if band.right else "right")
    points = np.asarray(band.points, dtype=np.float64)[idx]
    return np.where(np.isnan(x), 0.0, points)


# Ordered comparisons with NaN are simply False in numpy (no warning): a missing component
# never counts.
def _gt(x: FloatArray, threshold: float) -> FloatArray:
    return (x > threshold).astype(np.float64)


def _lt(x: FloatArray, threshold: float) -> FloatArray:
    return (x < threshold).astype(np.float64)


def _ge(x: FloatArray, threshold: float) -> FloatArray:
    return (x >= threshold).astype(np.float64)


def _le(x: FloatArray, threshold: float) -> FloatArray:
    return (x <= threshold).astype(np.float64)


def _vital_stats(v: FloatArray) -> FloatArray:
    """(n, W, k) vitals -> (n, k, len(VITAL_STATS)) summary statistics.

    Worked out on a copy laid out (W, k, n): each sum over the hours then adds whole
    contiguous planes hour by hour (the same additions, in the same order, as summing over
    axis 1 of `v`, so the same bits), instead of striding through short runs of k values.
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
    last = _last_observed(x, observed, axis=0)
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
    values: FloatArray, age: FloatArray, gender: FloatArray, iculos: FloatArray
) -> npt.NDArray[np.float32]:
    """Features of stacked windows: `values` (n, WINDOW_HOURS, len(INPUT_VARIABLES)) float64,
    `age`, `gender`, `iculos` (n,) float64 with NaN for unknown. The one feature function."""
    if values.ndim != 3 or values.shape[1:] != (WINDOW_HOURS, _N_VARS):
        raise ValueError(
            f"window values must have shape (n, {WINDOW_HOURS}, {_N_VARS}), got {values.shape}"
        )
    n = values.shape[0]
    vitals = _vital_stats(values[:, :, :_N_VITALS]).reshape(n, -1)
    last = _last_observed(values, ~np.isnan(values))

    def col(name: str) -> FloatArray:
        return last[:, _COL[name]]

    hr, sbp, dbp = col("HR"), col("SBP"), col("DBP")
    with np.errstate(divide="ignore", invalid="ignore"):
        shock_index = np.where(sbp > 0, hr / sbp, np.nan)
        bun_creat = np.where(col("Creatinine") > 0, col("BUN") / col("Creatinine"), np.nan)
    spo2_fio2 = col("O2Sat") / np.clip(col("FiO2"), _FIO2_MIN, _FIO2_MAX)
    derived = np.stack([shock_index, sbp - dbp, bun_creat, spo2_fio2], axis=1)

    temp, resp, wbc, fio2, spo2 = col("Temp"), col("Resp"), col("WBC"), col("FiO2"), col("O2Sat")
    sirs = (
        np.maximum(_gt(temp, scores.SIRS_TEMP_ABOVE), _lt(temp, scores.SIRS_TEMP_BELOW))
        + _gt(hr, scores.SIRS_HR_ABOVE)
        + np.maximum(_gt(resp, scores.SIRS_RESP_ABOVE), _lt(col("PaCO2"), scores.SIRS_PACO2_BELOW))
        + np.maximum(_gt(wbc, scores.SIRS_WBC_ABOVE), _lt(wbc, scores.SIRS_WBC_BELOW))
    )
    qsofa = _ge(resp, scores.QSOFA_RESP_MIN) + _le(sbp, scores.QSOFA_SBP_MAX)
    # FiO2 above room air means supplemental oxygen (NEWS2's "air or oxygen" parameter)
    news2 = _gt(fio2, ROOM_AIR_FIO2) * scores.NEWS2_SUPPLEMENTAL_O2 + sum(
        (_band_points(col(name), band) for name, band in NEWS2_BANDS.items()), np.zeros(n)
    )
    # respiration by SpO2/FiO2 only where SpO2 still tracks PaO2 (<= 97 %, Rice 2007)
    sf_points = _band_points(spo2_fio2, SOFA_SF_BANDS) * _le(spo2, scores.SOFA_SF_MAX_SPO2)
    sofa = sf_points + sum(
        (_band_points(col(name), band) for name, band in SOFA_BANDS.items()), np.zeros(n)
    )
    score_parts = np.stack([sirs, qsofa, news2, sofa], axis=1)

    demographics = np.stack([age, gender, iculos], axis=1)
    labs = last[:, _N_VITALS:]
    out = np.concatenate([vitals, labs, derived, score_parts, demographics], axis=1)
    return out.astype(np.float32)


def features_for_windows(windows: Sequence[PatientWindow]) -> npt.NDArray[np.float32]:
    """Feature matrix (n, len(FEATURE_NAMES)) float32 for a batch of windows, vectorised (one
    window, as a single request brings, by `_features_of_one`: the same values)."""
    if not windows:
        return np.empty((0, len(FEATURE_NAMES)), dtype=np.float32)
    if len(windows) == 1 and np.shape(windows[0].values) == (WINDOW_HOURS, _N_VARS):
        return _features_of_one(windows[0])
    values = np.stack([np.asarray(w.values, dtype=np.float64) for w in windows])
    age = np.array([w.age for w in windows], dtype=np.float64)
    gender = np.array([w.gender for w in windows], dtype=np.float64)
    iculos = np.array([w.iculos for w in windows], dtype=np.float64)
    return features_from_arrays(values, age, gender, iculos)


def _features_of_one(w: PatientWindow) -> npt.NDArray[np.float32]:
    """`features_from_arrays` of one window in plain Python: the same float64 operations in
    the same order (numpy sums along the window sequentially from 0.0, and so does this), so
    the same features bit for bit (tested), without the fixed cost of the hundred-odd numpy
    calls that dominates a single request."""
    nan = math.nan
    columns = list(zip(*np.asarray(w.values, dtype=np.float64).tolist(), strict=True))
    out: list[float] = []
    for v in columns[:_N_VITALS]:
        seen = [x == x for x in v]  # not NaN
        count = sum(seen)
        safe_count = float(max(count, 1))
        total = t_total = 0.0
        for j, x in enumerate(v):
            total += x if seen[j] else 0.0
            t_total += float(j) if seen[j] else 0.0
        mean, t_mean = total / safe_count, t_total / safe_count
        sq = sxx = sxy = 0.0
        for j, x in enumerate(v):
            dev = x - mean if seen[j] else 0.0
            t_dev = float(j) - t_mean if seen[j] else 0.0
            sq += dev * dev
            sxx += t_dev * t_dev
            sxy += t_dev * dev
        observed = [x for x in v if x == x]
        if not observed:
            out += [nan] * len(VITAL_STATS)
            continue
        spread = (math.sqrt(sq / safe_count), sxy / (sxx if sxx > 0 else 1.0))
        out += [observed[-1], mean, min(observed), max(observed)]
        out += spread if count > 1 else (nan, nan)
    last = {
        name: next((x for x in reversed(v) if x == x), nan)
        for name, v in zip(INPUT_VARIABLES, columns, strict=True)
    }
    out += [last[name] for name in LABS]

    hr, sbp, dbp, fio2, spo2 = last["HR"], last["SBP"], last["DBP"], last["FiO2"], last["O2Sat"]
    creatinine = last["Creatinine"]
    spo2_fio2 = spo2 / (fio2 if fio2 != fio2 else min(max(fio2, _FIO2_MIN), _FIO2_MAX))
    out += [
        hr / sbp if sbp > 0 else nan,
        sbp - dbp,
        last["BUN"] / creatinine if creatinine > 0 else nan,
        spo2_fio2,
    ]

    def points(x: float, band: _Banded) -> float:
        if x != x:
            return 0.0
        at = bisect.bisect_left if band.right else bisect.bisect_right
        return float(band.points[at(band.edges, x)])

    temp, resp, wbc = last["Temp"], last["Resp"], last["WBC"]
    sirs = (
        float(temp > scores.SIRS_TEMP_ABOVE or temp < scores.SIRS_TEMP_BELOW)
        + float(hr > scores.SIRS_HR_ABOVE)
        + float(resp > scores.SIRS_RESP_ABOVE or last["PaCO2"] < scores.SIRS_PACO2_BELOW)
        + float(wbc > scores.SIRS_WBC_ABOVE or wbc < scores.SIRS_WBC_BELOW)
    )
    qsofa = float(resp >= scores.QSOFA_RESP_MIN) + float(sbp <= scores.QSOFA_SBP_MAX)
    news2 = float(fio2 > ROOM_AIR_FIO2) * scores.NEWS2_SUPPLEMENTAL_O2 + sum(
        (points(last[name], band) for name, band in NEWS2_BANDS.items()), 0.0
    )
    sf_points = points(spo2_fio2, SOFA_SF_BANDS) * float(spo2 <= scores.SOFA_SF_MAX_SPO2)
    sofa = sf_points + sum((points(last[name], band) for name, band in SOFA_BANDS.items()), 0.0)
    out += [sirs, qsofa, news2, sofa, w.age, w.gender, w.iculos]
    return np.array([out], dtype=np.float64).astype(np.float32)


def stay_starts(stay_ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Index of the first row of each row's stay; rows of one stay must be contiguous."""
    ids = np.asarray(stay_ids)
    n = ids.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new_stay = np.ones(n, dtype=bool)
    new_stay[1:] = ids[1:] != ids[:-1]
    first = np.flatnonzero(new_stay).astype(np.int64)
    starts: npt.NDArray[np.int64] = first[np.cumsum(new_stay) - 1]
    return starts


def windows_for_stays(
    values: FloatArray, starts: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]
) -> FloatArray:
    """Windows (len(rows), WINDOW_HOURS, n_vars) of the given hourly rows of stacked stays.

    `values` holds the hourly rows of all stays one after another (INPUT_VARIABLES columns),
    `starts` the first row of each row's stay. Rows before the stay began are NaN.
    """
    offsets = np.arange(-(WINDOW_HOURS - 1), 1)
    idx = rows[:, None] + offsets[None, :]
    before_stay = idx < starts[rows][:, None]
    windows: FloatArray = values[np.maximum(idx, 0)]
    windows[before_stay] = np.nan
    return windows


def features_for_stays(
    values: FloatArray,
    stay_ids: npt.ArrayLike,
    *,
    age: FloatArray,
    gender: FloatArray,
    iculos: FloatArray,
    history_hours: int | None = None,
    stress: Mapping[str, npt.NDArray[np.bool_]] | None = None,
    chunk_rows: int = 50_000,
) -> npt.NDArray[np.float32]:
    """Features of every hour of every stay, each from its own window (training/evaluation).

    `values`: (n_rows, len(INPUT_VARIABLES)) float64 hourly rows, stays contiguous and in
    time order; `age`, `gender`, `iculos`: (n_rows,) per row (NaN = unknown). Identical to
    `features_for_windows` on the windows a request for that hour would carry.
    `history_hours` keeps only the newest rows of each window (1 = a single snapshot), as if
    the caller had sent that much history. `stress` (per row masks, see
    `sepsis_ml.training.data.STRESSES`) removes what real requests often lack: `recent_labs`
    (labs of the newest 8 hours), `bp` (SBP, MAP, DBP), `fio2`, `history` (vitals before the
    newest hour).
    """
    if history_hours is not None and not 1 <= history_hours <= WINDOW_HOURS:
        raise ValueError(f"history_hours must lie in 1..{WINDOW_HOURS}")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != _N_VARS:
        raise ValueError(f"values must have shape (n, {_N_VARS}), got {values.shape}")
    n = values.shape[0]
    starts = stay_starts(stay_ids)
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    for lo in range(0, n, chunk_rows):
        rows = np.arange(lo, min(lo + chunk_rows, n), dtype=np.int64)
        windows = windows_for_stays(values, starts, rows)
        if history_hours is not None:
            windows[:, : WINDOW_HOURS - history_hours, :] = np.nan
        if stress is not None:
            _apply_stress(windows, {k: m[rows] for k, m in stress.items()})
        out[rows] = features_from_arrays(
            windows,
            np.asarray(age, dtype=np.float64)[rows],
            np.asarray(gender, dtype=np.float64)[rows],
            np.asarray(iculos, dtype=np.float64)[rows],
        )
    return out


_STRESS_COLUMNS: Final = {
    "bp": [_COL["SBP"], _COL["MAP"], _COL["DBP"]],
    "fio2": [_COL["FiO2"]],
}


def _apply_stress(windows: FloatArray, masks: Mapping[str, npt.NDArray[np.bool_]]) -> None:
    for name, mask in masks.items():
        if name == "recent_labs":
            # every lab cell of the window is within the newest 8 hours
            windows[mask, :, _N_VITALS:] = np.nan
        elif name == "history":
            windows[mask, : WINDOW_HOURS - 1, :_N_VITALS] = np.nan
        else:
            cols = _STRESS_COLUMNS[name]
            picked = windows[mask]
            picked[:, :, cols] = np.nan
            windows[mask] = picked
