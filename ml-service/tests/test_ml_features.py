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
    WINDOW_HOURS,
    PatientWindow,
    _vital_stats,
    features_for_stays,
    features_for_windows,
    window_from_patient,
)
from sepsis_shared.patient import NormalizedPatient, Observation, parse_patient
from sepsis_shared.variables import VARIABLES

SET_A = Path(__file__).resolve().parents[3] / "shared" / "data" / "physionet2019" / "setA.parquet"
COL = {name: i for i, name in enumerate(INPUT_VARIABLES)}
FEAT = {name: i for i, name in enumerate(FEATURE_NAMES)}
NAN = math.nan


def empty_window(**rows: dict[str, float]) -> PatientWindow:
    values = np.full((WINDOW_HOURS, len(INPUT_VARIABLES)), np.nan)
    for key, row in rows.items():
        hour = int(key.removeprefix("h"))  # h0 = the scored hour, h1 an hour before, ...
        for name, value in row.items():
            values[WINDOW_HOURS - 1 - hour, COL[name]] = value
    return PatientWindow(values=values, age=60.0, gender=1.0, iculos=NAN)


def feature(x: np.ndarray, name: str, row: int = 0) -> float:
    return float(x[row, FEAT[name]])


def test_feature_names_are_unique_and_leave_out_bookkeeping() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    for left_out in ("EtCO2", "HospAdmTime", "Unit1", "Unit2"):
        assert not any(name.startswith(left_out) for name in FEATURE_NAMES)
    assert 6 <= WINDOW_HOURS <= 12


def test_window_from_patient_buckets_by_hour_and_keeps_the_newest() -> None:
    patient = NormalizedPatient(
        series={
            "HR": (
                Observation(70.0, 30.0),  # older than the window: dropped
                Observation(80.0, 2.5),  # row W-3
                Observation(90.0, 0.9),  # row W-1, older of two in [0, 1)
                Observation(95.0, 0.2),  # row W-1, newest: wins
            ),
            "Lactate": (Observation(3.1, float(WINDOW_HOURS - 1)),),  # first row
            "GCS": (Observation(14.0, 0.0),),  # not a model input: ignored
        },
        age=71.0,
        gender=0,
        iculos=None,
    )
    w = window_from_patient(patient)
    assert w.values.shape == (WINDOW_HOURS, len(INPUT_VARIABLES))
    assert w.values[-1, COL["HR"]] == 95.0
    assert w.values[-3, COL["HR"]] == 80.0
    assert w.values[0, COL["Lactate"]] == 3.1
    assert np.isnan(w.values[-2, COL["HR"]])
    assert int(np.isfinite(w.values).sum()) == 3
    assert (w.age, w.gender) == (71.0, 0.0)
    assert math.isnan(w.iculos)


def test_vital_statistics_carry_forward_within_the_window_only() -> None:
    w = empty_window(h4={"HR": 100.0}, h2={"HR": 110.0}, h1={"HR": 120.0})
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
    x = features_for_windows([empty_window(h0={"HR": 88.0})])
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


def test_derived_indices_and_score_parts() -> None:
    w = empty_window(
        h0={
            "HR": 120.0,
            "SBP": 90.0,
            "DBP": 50.0,
            "MAP": 63.0,
            "Resp": 24.0,
            "Temp": 38.6,
            "O2Sat": 93.0,
            "FiO2": 0.5,
            "BUN": 40.0,
            "Creatinine": 2.0,
            "WBC": 15.0,
            "Platelets": 90.0,
        }
    )
    x = features_for_windows([w])
    assert feature(x, "ShockIndex") == pytest.approx(120 / 90)
    assert feature(x, "PulsePressure") == 40.0
    assert feature(x, "BUN_Creatinine") == 20.0
    assert feature(x, "SpO2_FiO2") == pytest.approx(186.0)
    assert feature(x, "SIRS_partial") == 4.0  # temp, HR, resp, WBC
    assert feature(x, "qSOFA_partial") == 2.0  # resp >= 22, SBP <= 100
    # NEWS2: resp 24 -> 2, SpO2 93 -> 2, oxygen (FiO2 0.5) -> 2, SBP 90 -> 3, HR 120 -> 2,
    # temp 38.6 -> 1
    assert feature(x, "NEWS2_partial") == 12.0
    # SOFA: S/F 186 (SpO2 <= 97) -> 3, platelets 90 -> 2, creatinine 2.0 -> 2, MAP < 70 -> 1
    assert feature(x, "SOFA_partial") == 8.0


def test_nothing_measured_gives_nan_values_and_zero_scores() -> None:
    x = features_for_windows([empty_window()])
    assert x.dtype == np.float32
    assert x.shape == (1, len(FEATURE_NAMES))
    assert math.isnan(feature(x, "HR_mean"))
    assert feature(x, "NEWS2_partial") == 0.0
    assert feature(x, "Age") == 60.0


def test_stay_path_equals_window_path_on_a_synthetic_stay() -> None:
    rng = np.random.default_rng(0)
    n = 30
    values = rng.normal(100, 10, size=(n, len(INPUT_VARIABLES)))
    values[rng.random(values.shape) < 0.6] = np.nan
    ids = np.array(["a"] * 12 + ["b"] * 18)
    age = np.where(ids == "a", 50.0, 70.0)
    gender = np.where(ids == "a", 0.0, 1.0)
    iculos = np.concatenate([np.arange(1, 13), np.arange(5, 23)]).astype(float)
    stay = features_for_stays(values, ids, age=age, gender=gender, iculos=iculos, chunk_rows=7)
    windows = []
    for r in range(n):
        start = 0 if ids[r] == "a" else 12
        w = np.full((WINDOW_HOURS, len(INPUT_VARIABLES)), np.nan)
        lo = max(start, r - WINDOW_HOURS + 1)
        w[WINDOW_HOURS - (r - lo + 1) :] = values[lo : r + 1]
        windows.append(PatientWindow(values=w, age=age[r], gender=gender[r], iculos=iculos[r]))
    np.testing.assert_array_equal(stay, features_for_windows(windows))


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
    """The structured request for hour t: HR as a [{val, ts}] series (its newest point is the
    scored hour, which anchors hours_ago), variables measured every hour up to t as lists
    newest first, others as time series. None when a value lies outside the API's ranges."""
    base = datetime(2026, 2, 7, 0, 0)
    lo = max(0, t - WINDOW_HOURS + 1)
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
