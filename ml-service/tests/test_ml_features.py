"""Window features: bucketing of a request, values of the features, and parity between the
service path (request -> parse_patient -> window_from_patient -> features_for_windows) and the
training path (features_for_stays over whole stays) on real rows of set A."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sepsis_ml.features import (
    FEATURE_NAMES,
    INPUT_VARIABLES,
    LAB_MAX_AGE_HOURS,
    LABS,
    VITALS,
    WINDOW_HOURS,
    PatientWindow,
    Withheld,
    _vital_stats,
    features_for_stays,
    features_for_windows,
    window_from_patient,
)
from sepsis_shared.patient import NormalizedPatient, Observation, parse_patient
from sepsis_shared.variables import VARIABLES

SET_A = Path(__file__).resolve().parents[3] / "shared" / "data" / "physionet2019" / "setA.parquet"
VCOL = {name: i for i, name in enumerate(VITALS)}
LCOL = {name: i for i, name in enumerate(LABS)}
FEAT = {name: i for i, name in enumerate(FEATURE_NAMES)}
NAN = math.nan


def window(
    labs: dict[str, tuple[float, float]] | None = None, **rows: dict[str, float]
) -> PatientWindow:
    """Vitals by hour (h0 = the scored hour, h1 an hour before, ...); labs as (value, age)."""
    vitals = np.full((WINDOW_HOURS, len(VITALS)), np.nan)
    for key, row in rows.items():
        hour = int(key.removeprefix("h"))
        for name, value in row.items():
            vitals[WINDOW_HOURS - 1 - hour, VCOL[name]] = value
    values = np.full(len(LABS), np.nan)
    ages = np.full(len(LABS), np.nan)
    for name, (value, age) in (labs or {}).items():
        values[LCOL[name]], ages[LCOL[name]] = value, age
    return PatientWindow(
        vitals=vitals, labs=values, lab_ages=ages, age=60.0, gender=1.0, iculos=NAN
    )


def feature(x: np.ndarray, name: str, row: int = 0) -> float:
    return float(x[row, FEAT[name]])


def test_feature_names_are_unique_and_leave_out_bookkeeping() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    for left_out in ("EtCO2", "HospAdmTime", "Unit1", "Unit2"):
        assert not any(name.startswith(left_out) for name in FEATURE_NAMES)
    assert 6 <= WINDOW_HOURS <= 12
    assert all(f"{lab}_age" in FEAT for lab in LABS)


def test_window_from_patient_buckets_vitals_by_hour_and_keeps_labs_with_their_age() -> None:
    patient = NormalizedPatient(
        series={
            "HR": (
                Observation(70.0, 30.0),  # older than the window: dropped
                Observation(80.0, 2.5),  # row W-3
                Observation(90.0, 0.9),  # row W-1, older of two in [0, 1)
                Observation(95.0, 0.2),  # row W-1, newest: wins
            ),
            "Lactate": (Observation(3.1, 20.0), Observation(2.2, 11.5)),  # the newest counts
            "Creatinine": (Observation(1.9, LAB_MAX_AGE_HOURS + 0.5),),  # too old for the model
            "GCS": (Observation(14.0, 0.0),),  # not a model input: ignored
        },
        age=71.0,
        gender=0,
        iculos=None,
    )
    w = window_from_patient(patient)
    assert w.vitals.shape == (WINDOW_HOURS, len(VITALS))
    assert w.vitals[-1, VCOL["HR"]] == 95.0
    assert w.vitals[-3, VCOL["HR"]] == 80.0
    assert np.isnan(w.vitals[-2, VCOL["HR"]])
    assert int(np.isfinite(w.vitals).sum()) == 2
    assert (w.labs[LCOL["Lactate"]], w.lab_ages[LCOL["Lactate"]]) == (2.2, 11.5)
    assert np.isnan(w.labs[LCOL["Creatinine"]])
    assert int(np.isfinite(w.labs).sum()) == 1
    assert (w.age, w.gender) == (71.0, 0.0)
    assert math.isnan(w.iculos)


def test_vital_statistics_carry_forward_within_the_window_only() -> None:
    w = window(h4={"HR": 100.0}, h2={"HR": 110.0}, h1={"HR": 120.0})
    x = features_for_windows([w])
    assert feature(x, "HR_last") == 120.0  # carried forward to the scored hour
    assert feature(x, "HR_mean") == pytest.approx(110.0)
    assert feature(x, "HR_min") == 100.0
    assert feature(x, "HR_max") == 120.0
    assert feature(x, "HR_std") == pytest.approx(np.std([100.0, 110.0, 120.0]), rel=1e-6)
    # least squares through (t=-4, 100), (-2, 110), (-1, 120)
    assert feature(x, "HR_slope") == pytest.approx(np.polyfit([-4, -2, -1], [100, 110, 120], 1)[0])
    assert math.isnan(feature(x, "SBP_last"))


def test_a_single_value_has_no_spread_or_trend() -> None:
    x = features_for_windows([window(h0={"HR": 88.0})])
    assert feature(x, "HR_last") == feature(x, "HR_mean") == 88.0
    assert math.isnan(feature(x, "HR_std"))
    assert math.isnan(feature(x, "HR_slope"))


def test_vital_statistics_add_the_hours_in_order_to_the_same_bits() -> None:
    # The committed model was trained on statistics summed hour by hour (over axis 1 of the
    # window); however they are laid out in memory, they must come to the same bits.
    rng = np.random.default_rng(3)
    for _ in range(20):
        v = rng.normal(100.0, 30.0, size=(300, WINDOW_HOURS, 7))
        v[rng.random(v.shape) < rng.uniform(0.1, 0.9)] = np.nan
        observed = ~np.isnan(v)
        count = np.maximum(observed.sum(axis=1), 1).astype(np.float64)
        mean = np.where(observed, v, 0.0).sum(axis=1) / count
        dev = np.where(observed, v - mean[:, None, :], 0.0)
        std = np.sqrt((dev * dev).sum(axis=1) / count)
        t = np.arange(WINDOW_HOURS, dtype=np.float64)[None, :, None]
        t_dev = np.where(
            observed, t - (np.where(observed, t, 0.0).sum(axis=1) / count)[:, None, :], 0.0
        )
        sxx = (t_dev * t_dev).sum(axis=1)
        slope = (t_dev * dev).sum(axis=1) / np.where(sxx > 0, sxx, 1.0)
        stats = _vital_stats(v)
        n = observed.sum(axis=1)
        for j, expected in ((1, mean), (4, std), (5, slope)):
            wanted = np.where(n > (1 if j >= 4 else 0), expected, np.nan)
            assert stats[:, :, j].tobytes() == wanted.tobytes()


def test_labs_and_derived_indices() -> None:
    w = window(
        labs={"FiO2": (0.5, 2.0), "BUN": (40.0, 10.0), "Creatinine": (2.0, 10.0)},
        h0={"HR": 120.0, "SBP": 90.0, "DBP": 50.0, "O2Sat": 93.0},
    )
    x = features_for_windows([w])
    assert feature(x, "ShockIndex") == pytest.approx(120 / 90)
    assert feature(x, "PulsePressure") == 40.0
    assert feature(x, "BUN_Creatinine") == 20.0
    assert feature(x, "SpO2_FiO2") == pytest.approx(186.0)
    assert (feature(x, "Creatinine_last"), feature(x, "Creatinine_age")) == (2.0, 10.0)
    assert math.isnan(feature(x, "Lactate_last"))
    assert math.isnan(feature(x, "Lactate_age"))


def test_nothing_measured_gives_nan_values() -> None:
    x = features_for_windows([window()])
    assert x.dtype == np.float32
    assert x.shape == (1, len(FEATURE_NAMES))
    assert math.isnan(feature(x, "HR_mean"))
    assert feature(x, "Age") == 60.0


def _stay_windows(
    values: np.ndarray,
    ids: np.ndarray,
    age: np.ndarray,
    gender: np.ndarray,
    iculos: np.ndarray,
    *,
    skip: int = 0,
) -> list[PatientWindow]:
    """The windows of every row, worked out the slow way (a reference for the stay path)."""
    out = []
    n_vitals = len(VITALS)
    for r in range(len(ids)):
        start = int(np.flatnonzero(ids == ids[r])[0])
        vitals = np.full((WINDOW_HOURS, n_vitals), np.nan)
        lo = max(start, r - WINDOW_HOURS + 1)
        vitals[WINDOW_HOURS - (r - lo + 1) :] = values[lo : r + 1, :n_vitals]
        labs = np.full(len(LABS), np.nan)
        ages = np.full(len(LABS), np.nan)
        for j in range(len(LABS)):
            for back in range(skip, int(LAB_MAX_AGE_HOURS) + 1):
                row = r - back
                if row < start:
                    break
                if not np.isnan(values[row, n_vitals + j]):
                    labs[j], ages[j] = values[row, n_vitals + j], float(back)
                    break
        out.append(PatientWindow(vitals, labs, ages, age[r], gender[r], iculos[r]))
    return out


def _synthetic_stays() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    n = 70
    values = rng.normal(100, 10, size=(n, len(INPUT_VARIABLES)))
    values[rng.random(values.shape) < 0.6] = np.nan
    values[:, len(VITALS) :][rng.random((n, len(LABS))) < 0.3] = np.nan  # labs sparser
    ids = np.array(["a"] * 12 + ["b"] * 58)
    age = np.where(ids == "a", 50.0, 70.0)
    gender = np.where(ids == "a", 0.0, 1.0)
    iculos = np.concatenate([np.arange(1, 13), np.arange(5, 63)]).astype(float)
    return values, ids, age, gender, iculos


def test_stay_path_equals_window_path_on_synthetic_stays() -> None:
    values, ids, age, gender, iculos = _synthetic_stays()
    stay = features_for_stays(values, ids, age=age, gender=gender, iculos=iculos, chunk_rows=7)
    expected = features_for_windows(_stay_windows(values, ids, age, gender, iculos))
    np.testing.assert_array_equal(stay, expected)


def test_withheld_inputs_are_left_out_as_a_request_would_lack_them() -> None:
    values, ids, age, gender, iculos = _synthetic_stays()
    n = len(ids)
    pick = np.arange(n) % 3 == 0
    withheld = Withheld(
        recent_labs=pick, bp=~pick, fio2=np.ones(n, dtype=bool), vital_hours=np.full(n, 2)
    )
    got = features_for_stays(
        values, ids, age=age, gender=gender, iculos=iculos, withheld=withheld, chunk_rows=9
    )
    plain = _stay_windows(values, ids, age, gender, iculos)
    older = _stay_windows(values, ids, age, gender, iculos, skip=8)
    expected = []
    for r in range(n):
        w = older[r] if pick[r] else plain[r]
        vitals = w.vitals.copy()
        vitals[: WINDOW_HOURS - 2] = np.nan
        if not pick[r]:
            vitals[:, [VCOL["SBP"], VCOL["MAP"], VCOL["DBP"]]] = np.nan
        labs, ages = w.labs.copy(), w.lab_ages.copy()
        labs[LCOL["FiO2"]] = ages[LCOL["FiO2"]] = np.nan
        expected.append(PatientWindow(vitals, labs, ages, w.age, w.gender, w.iculos))
    np.testing.assert_array_equal(got, features_for_windows(expected))
    # the recent labs really were replaced by older ones somewhere
    assert (older[0].lab_ages >= 8).all() or np.isnan(older[0].lab_ages).all()


# ------------------------------------------------------------------------------------------
# Parity on real stays: the request the API would receive for hour t gives the training row.


@pytest.fixture(scope="module")
def set_a_stays() -> pd.DataFrame:
    if not SET_A.is_file():
        pytest.skip(f"set A is not available at {SET_A} (real-data parity test)")
    df = pd.read_parquet(SET_A)
    # a fixed handful of stays: two septic, two not
    septic = df.groupby("patient_id")["SepsisLabel"].max()
    chosen = list(septic[septic == 1].index[:2]) + list(septic[septic == 0].index[:2])
    return df[df["patient_id"].isin(chosen)].reset_index(drop=True)


def _training_features(stay: pd.DataFrame) -> np.ndarray:
    return features_for_stays(
        stay[list(INPUT_VARIABLES)].to_numpy(np.float64),
        stay["patient_id"].to_numpy(),
        age=stay["Age"].to_numpy(np.float64),
        gender=stay["Gender"].to_numpy(np.float64),
        iculos=stay["ICULOS"].to_numpy(np.float64),
    )


def _in_range(name: str, value: float) -> bool:
    spec = VARIABLES[name]
    return spec.low <= value <= spec.high


def _request_for_hour(stay: pd.DataFrame, t: int) -> dict[str, Any] | None:
    """The structured request for hour t, carrying the rows of the labs' reach (vitals older
    than their window are sent too, as a chart export would): HR as a [{val, ts}] series (its
    newest point is the scored hour, which anchors hours_ago), variables measured every hour up
    to t as lists newest first, others as time series. None when a value lies outside the
    API's ranges."""
    base = datetime(2026, 2, 7, 0, 0)
    lo = max(0, t - int(LAB_MAX_AGE_HOURS))
    rows = stay.iloc[lo : t + 1]
    vitals: dict[str, Any] = {}
    for name in INPUT_VARIABLES:
        column = rows[name].to_numpy(np.float64)
        measured = ~np.isnan(column)
        if not measured.any():
            continue
        if not all(_in_range(name, v) for v in column[measured]):
            return None
        k = int(np.argmin(measured[::-1])) if not measured.all() else len(column)
        if name != "HR" and k > 0 and measured[-k:].all() and not measured[:-k].any():
            vitals[name] = [float(v) for v in column[::-1][:k]]  # newest first
        else:
            vitals[name] = [
                {"val": float(v), "ts": (base + timedelta(hours=int(h))).isoformat()}
                for v, h, m in zip(column, rows["ICULOS"], measured, strict=True)
                if m
            ]
    row = stay.iloc[t]
    return {
        "patient_id": str(row["patient_id"]),
        "vitals": vitals,
        "Age": float(row["Age"]),
        "Gender": int(row["Gender"]),
        "ICULOS": float(row["ICULOS"]),
    }


def test_request_features_equal_training_features_on_real_stays(set_a_stays: pd.DataFrame) -> None:
    checked = 0
    forms: set[str] = set()
    for _, stay in set_a_stays.groupby("patient_id", sort=True):
        stay = stay.reset_index(drop=True)
        expected = _training_features(stay)
        hr_at = np.flatnonzero(~np.isnan(stay["HR"].to_numpy()))
        # early hours (a partial window) and hours spread over the stay
        hours = sorted(
            {int(h) for h in hr_at[:3]} | {int(h) for h in hr_at[:: max(1, len(hr_at) // 6)]}
        )
        for t in hours:
            request = _request_for_hour(stay, t)
            if request is None:
                continue
            forms |= {
                "list" if isinstance(v[0], float) else "series" for v in request["vitals"].values()
            }
            got = features_for_windows([window_from_patient(parse_patient(request))])
            np.testing.assert_allclose(got[0], expected[t], rtol=0, atol=0, equal_nan=True)
            checked += 1
    assert checked >= 20
    assert forms == {"list", "series"}


def test_a_single_snapshot_equals_a_one_hour_stay(set_a_stays: pd.DataFrame) -> None:
    checked = 0
    for _, stay in set_a_stays.groupby("patient_id", sort=True):
        stay = stay.reset_index(drop=True)
        for t in (0, len(stay) // 2, len(stay) - 1):
            row = stay.iloc[[t]].reset_index(drop=True)
            current = row[list(INPUT_VARIABLES)].to_numpy(np.float64)[0]
            flat: dict[str, Any] = {
                name: float(v)
                for name, v in zip(INPUT_VARIABLES, current, strict=True)
                if not math.isnan(v)
            }
            if not flat or not all(_in_range(k, v) for k, v in flat.items()):
                continue
            age, gender = row[["Age", "Gender"]].to_numpy(np.float64)[0]
            flat |= {"Age": float(age), "Gender": int(gender)}
            got = features_for_windows([window_from_patient(parse_patient(flat))])
            # the training path for a stay that is this one hour, ICULOS unknown
            expected = features_for_stays(
                row[list(INPUT_VARIABLES)].to_numpy(np.float64),
                row["patient_id"].to_numpy(),
                age=row["Age"].to_numpy(np.float64),
                gender=row["Gender"].to_numpy(np.float64),
                iculos=np.array([np.nan]),
            )
            np.testing.assert_allclose(got, expected, rtol=0, atol=0, equal_nan=True)
            assert math.isnan(feature(got, "ICULOS"))
            checked += 1
    assert checked >= 6
